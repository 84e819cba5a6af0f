//! Prometheus' query API, as a rollout's analysis uses it: one instant
//! query, one value. The gateway metrics a spec names become PromQL in
//! `autoglm_core::rollout::promql`; this crate only asks and reads.

use std::time::Duration;

use autoglm_core::rollout::promql::query;
use autoglm_core::rollout::{ReadyMetric, Rollout};
use serde_json::Value;

/// A Prometheus server's query API.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    base: String,
}

impl Prometheus {
    /// The server at `base` (e.g. `http://prometheus:9090`).
    pub fn new(base: &str) -> Prometheus {
        Prometheus {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The one value `promql` evaluates to now; `None` for no sample or NaN
    /// (no data), an error when Prometheus could not answer.
    pub async fn value(&self, promql: &str) -> Result<Option<f64>, String> {
        let answer = self
            .http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|e| format!("cannot reach Prometheus at {}: {e}", self.base))?;
        let status = answer.status();
        let body: Value = answer
            .json()
            .await
            .map_err(|e| format!("Prometheus answered {status} without JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!(
                "Prometheus refused the query {promql:?}: {}",
                body["error"].as_str().unwrap_or("no reason given")
            ));
        }
        Ok(body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite()))
    }

    /// `metric` of `rollout`'s canary and of its stable version (the
    /// baseline), in `tenant`'s `service`, over the metric's interval.
    pub async fn measure(
        &self,
        tenant: &str,
        service: &str,
        rollout: &Rollout,
        metric: &ReadyMetric,
    ) -> Result<(Option<f64>, Option<f64>), String> {
        let of = |version: &str| query(metric.metric, tenant, service, version, metric.interval);
        let value = self.value(&of(&rollout.canary)).await?;
        let baseline = self.value(&of(&rollout.stable)).await?;
        Ok((value, baseline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP server answering `body` to the first request; the
    /// request line it got. (Prometheus itself answers in the end-to-end
    /// tests; this pins how answers are read.)
    async fn answer_once(body: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 4096];
            let n = stream.read(&mut request).await.unwrap();
            let head = String::from_utf8_lossy(&request[..n]).into_owned();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).await.unwrap();
            head.lines().next().unwrap_or_default().to_owned()
        });
        (url, served)
    }

    #[tokio::test]
    async fn a_sample_is_a_value_and_no_sample_or_nan_is_no_data() {
        let cases = [
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"0.25"]}]}}"#,
                Ok(Some(0.25)),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
                Ok(None),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"NaN"]}]}}"#,
                Ok(None),
            ),
        ];
        for (body, expected) in cases {
            let (url, served) = answer_once(body).await;
            let got = Prometheus::new(&url).value("up{job=\"a b\"}").await;
            assert_eq!(got, expected, "{body}");
            let line = served.await.unwrap();
            assert!(
                line.starts_with("GET /api/v1/query?query=up%7Bjob%3D%22a+b%22%7D "),
                "{line}"
            );
        }
        let (url, _served) =
            answer_once(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#).await;
        let refused = Prometheus::new(&url).value("up{").await.unwrap_err();
        assert!(refused.contains("parse error"), "{refused}");
        let unreachable = Prometheus::new("http://127.0.0.1:9")
            .value("up")
            .await
            .unwrap_err();
        assert!(
            unreachable.starts_with("cannot reach Prometheus"),
            "{unreachable}"
        );
    }
}
