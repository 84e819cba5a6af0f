//! Every `/metrics` page of `autoglm up` (the console's and the gateway's)
//! passes `promtool check metrics` (Debian's `prometheus` package) once its
//! counters have samples, in the classic text format a plain scraper gets;
//! a scraper that asks for OpenMetrics gets OpenMetrics.

use reqwest::StatusCode;

use crate::common::promtool_check;
use crate::env::{Env, one_version};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metrics_page_passes_promtool_and_openmetrics_is_negotiated() {
    let env = Env::with_echo(&[], 1, one_version(1), 1).await;
    let token = env.up.console.token.clone();
    // Traffic first, so that the counters have samples to check.
    for _ in 0..3 {
        let resp = env.chat(&token, "echo").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    for base in [&env.up.console.url, &env.up.gateway] {
        let url = format!("{base}/metrics");
        let plain = env.http.get(&url).send().await.unwrap();
        assert_eq!(
            plain.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let page = plain.text().await.unwrap();
        assert!(
            page.contains("_total{"),
            "no counter samples at {url}:\n{page}"
        );
        let (passed, said) = promtool_check(&page);
        assert!(passed, "promtool check metrics on {url}: {said}");

        let open = env
            .http
            .get(&url)
            .header(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            )
            .send()
            .await
            .unwrap();
        assert!(
            open.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text"),
        );
        assert!(open.text().await.unwrap().ends_with("# EOF\n"));
    }
}
