//! The ValidatingAdmissionWebhook: every replica of the operator (leader or
//! not) serves `POST /validate` over TLS and keeps the
//! ValidatingWebhookConfiguration that sends it ModelService creates and
//! updates. Its certificate comes from files (cert-manager's, say) or is
//! made here: a CA and a serving certificate kept in a Secret, so that all
//! replicas serve one certificate and the configuration names one CA.
//!
//! Why `failurePolicy: Fail` by default: a policy that a crashed webhook
//! lets through is no policy. Replicas and the short timeout keep that from
//! blocking writes for long (see ARCHITECTURE.md).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use axum_server::tls_rustls::RustlsConfig;
use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionResponse, AdmissionReview};
use kube::runtime::{WatchStreamExt, reflector, watcher};

use crate::admission::Judge;
use crate::children::scoped_watch;
use crate::reconcile::FIELD_MANAGER;

/// The ValidatingWebhookConfiguration's name, and its webhook's.
pub const CONFIGURATION: &str = "autoglm-policies";
const WEBHOOK: &str = "policies.autoglm.io";
/// The Secret a self-signed certificate is kept in.
const TLS_SECRET: &str = "autoglm-webhook-tls";

/// Where the API server finds the webhook.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A URL (`https://…/validate`), e.g. an operator outside the cluster.
    Url(String),
    /// The operator's Service, in the cluster.
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its port.
        port: i32,
    },
}

impl Endpoint {
    /// The names the serving certificate must carry.
    fn hosts(&self) -> Vec<String> {
        match self {
            Endpoint::Url(url) => {
                let host = url
                    .split("://")
                    .nth(1)
                    .unwrap_or(url)
                    .split(['/', '?'])
                    .next()
                    .unwrap_or_default();
                let host = match host.rsplit_once(':') {
                    Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
                    _ => host,
                };
                vec![host.trim_matches(['[', ']']).to_owned()]
            }
            Endpoint::Service {
                namespace, name, ..
            } => vec![
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}.svc.cluster.local"),
            ],
        }
    }

    fn client_config(&self, ca: &[u8]) -> WebhookClientConfig {
        let ca_bundle = Some(ByteString(ca.to_vec()));
        match self {
            Endpoint::Url(url) => WebhookClientConfig {
                url: Some(url.clone()),
                ca_bundle,
                service: None,
            },
            Endpoint::Service {
                namespace,
                name,
                port,
            } => WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some("/validate".to_owned()),
                    port: Some(*port),
                }),
                ca_bundle,
                url: None,
            },
        }
    }
}

/// The serving certificate.
#[derive(Debug, Clone)]
pub enum Certificate {
    /// PEM files; the CA bundle the API server should trust.
    Files {
        /// The certificate chain.
        cert: std::path::PathBuf,
        /// Its private key.
        key: std::path::PathBuf,
        /// The CA that signed it.
        ca: std::path::PathBuf,
    },
    /// Made here, kept in the Secret `autoglm-webhook-tls` of this namespace.
    SelfSigned {
        /// The Secret's namespace.
        namespace: String,
    },
}

/// How the webhook runs.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Listen here.
    pub addr: SocketAddr,
    /// Where the API server calls.
    pub endpoint: Endpoint,
    /// Its certificate.
    pub certificate: Certificate,
    /// `Fail` (refuse writes while no webhook answers) or `Ignore`.
    pub failure_policy: String,
    /// How long the API server waits for an answer.
    pub timeout_seconds: i32,
    /// Judge ModelServices only in these namespaces; all when empty.
    pub namespaces: Vec<String>,
    /// Where the console keeps each tenant's policies (`autoglm-system`).
    pub policies_namespace: String,
    /// Users whose writes are let through unjudged: the console's
    /// ServiceAccount, which judged each with its real caller already.
    pub trusted_users: Vec<String>,
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A certificate file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate could not be made.
    #[error("making the webhook's certificate: {0}")]
    Certificate(String),
    /// The API server refused or could not be asked.
    #[error("{what}: {source}")]
    Kubernetes {
        /// What was asked.
        what: String,
        /// Its answer.
        #[source]
        source: kube::Error,
    },
    /// The address could not be served.
    #[error("serving the webhook on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// PEM certificate, key and CA.
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, WebhookError> {
    std::fs::read(path).map_err(|source| WebhookError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A CA and a certificate for `hosts` signed by it.
fn make_certificate(hosts: Vec<String>) -> Result<Pem, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "autoglm webhook CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "autoglm operator webhook");
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem().into_bytes(),
        key: key.serialize_pem().into_bytes(),
        ca: ca_cert.pem().into_bytes(),
    })
}

/// The Secret's PEM, when it holds all three.
fn from_secret(secret: &Secret) -> Option<Pem> {
    let data = secret.data.as_ref()?;
    let field = |k: &str| data.get(k).map(|b| b.0.clone());
    Some(Pem {
        cert: field("tls.crt")?,
        key: field("tls.key")?,
        ca: field("ca.crt")?,
    })
}

/// The self-signed certificate every replica shares: the Secret's, or one
/// made now and stored (the first replica to store it wins; the others read it).
async fn shared_certificate(
    client: &Client,
    namespace: &str,
    hosts: Vec<String>,
) -> Result<Pem, WebhookError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let kube = |what: &str| {
        let what = format!("{what} Secret {namespace}/{TLS_SECRET}");
        move |source| WebhookError::Kubernetes { what, source }
    };
    if let Some(secret) = secrets.get_opt(TLS_SECRET).await.map_err(kube("reading"))?
        && let Some(pem) = from_secret(&secret)
    {
        return Ok(pem);
    }
    let made = make_certificate(hosts).map_err(|e| WebhookError::Certificate(e.to_string()))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(TLS_SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            [
                ("tls.crt", &made.cert),
                ("tls.key", &made.key),
                ("ca.crt", &made.ca),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.clone())))
            .collect(),
        ),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(made),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let stored = secrets.get(TLS_SECRET).await.map_err(kube("reading"))?;
            from_secret(&stored).ok_or_else(|| {
                WebhookError::Certificate(format!(
                    "Secret {namespace}/{TLS_SECRET} lacks tls.crt, tls.key or ca.crt"
                ))
            })
        }
        Err(source) => Err(kube("creating")(source)),
    }
}

/// The configuration that sends ModelService writes to this webhook.
fn configuration(settings: &WebhookSettings, ca: &[u8]) -> ValidatingWebhookConfiguration {
    let namespace_selector = (!settings.namespaces.is_empty()).then(|| LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".to_owned(),
            operator: "In".to_owned(),
            values: Some(settings.namespaces.clone()),
        }]),
        match_labels: None,
    });
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(CONFIGURATION.to_owned()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: WEBHOOK.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: settings.endpoint.client_config(ca),
            failure_policy: Some(settings.failure_policy.clone()),
            match_policy: Some("Equivalent".to_owned()),
            namespace_selector,
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![autoglm_render::GROUP.to_owned()]),
                api_versions: Some(vec![autoglm_render::VERSION.to_owned()]),
                operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
                // The scale subresource too: `kubectl scale` changes replicas.
                resources: Some(vec![
                    autoglm_render::PLURAL.to_owned(),
                    format!("{}/scale", autoglm_render::PLURAL),
                ]),
                scope: Some("Namespaced".to_owned()),
            }]),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(settings.timeout_seconds),
            ..ValidatingWebhook::default()
        }]),
    }
}

/// Serves the webhook until the process ends: reads or makes its
/// certificate, fills the caches it judges from, starts listening, and
/// only then applies the configuration (so the API server never calls a
/// webhook that is not there yet).
pub async fn serve_webhook(client: Client, settings: WebhookSettings) -> Result<(), WebhookError> {
    let pem = match &settings.certificate {
        Certificate::Files { cert, key, ca } => Pem {
            cert: read(cert)?,
            key: read(key)?,
            ca: read(ca)?,
        },
        Certificate::SelfSigned { namespace } => {
            shared_certificate(&client, namespace, settings.endpoint.hosts()).await?
        }
    };
    let tls = RustlsConfig::from_pem(pem.cert, pem.key)
        .await
        .map_err(|e| WebhookError::Certificate(e.to_string()))?;

    let (config_maps, writer) = reflector::store();
    let policies = watcher(
        Api::<ConfigMap>::namespaced(client.clone(), &settings.policies_namespace),
        watcher::Config::default().labels(&format!("{}=true", autoglm_policy::LABEL)),
    )
    .default_backoff()
    .reflect(writer)
    .for_each(|_| async {});
    tokio::spawn(policies);
    let (tenants, writer) = reflector::store();
    let namespaces = watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default().labels(autoglm_policy::TENANT_LABEL),
    )
    .default_backoff()
    .reflect(writer)
    .for_each(|_| async {});
    tokio::spawn(namespaces);
    let (services, writer) = reflector::store();
    let watched = scoped_watch::<autoglm_render::ModelServiceObject>(
        &client,
        &settings.namespaces,
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .for_each(|_| async {});
    tokio::spawn(watched);
    // Judging from empty caches would let a violation through.
    let (_, _, _) = tokio::join!(
        config_maps.wait_until_ready(),
        tenants.wait_until_ready(),
        services.wait_until_ready()
    );
    let judge = Arc::new(Judge::new(
        settings.policies_namespace.clone(),
        settings.trusted_users.clone(),
        config_maps,
        tenants,
        services,
    ));

    let std_listener =
        std::net::TcpListener::bind(settings.addr).map_err(|source| WebhookError::Listen {
            addr: settings.addr,
            source,
        })?;
    let _ = std_listener.set_nonblocking(true);
    let app = axum::Router::new()
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(judge);
    let server = axum_server::from_tcp_rustls(std_listener, tls).serve(app.into_make_service());

    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    configurations
        .patch(
            CONFIGURATION,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(configuration(&settings, &pem.ca)),
        )
        .await
        .map_err(|source| WebhookError::Kubernetes {
            what: format!("applying ValidatingWebhookConfiguration {CONFIGURATION}"),
            source,
        })?;
    tracing::info!(addr = %settings.addr, "admission webhook serving");
    server.await.map_err(|source| WebhookError::Listen {
        addr: settings.addr,
        source,
    })
}

/// `POST /validate`: one AdmissionReview in, its answer out.
async fn validate(
    State(judge): State<Arc<Judge>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let response = match review.try_into() {
        Ok(request) => judge.review(&request),
        Err(e) => AdmissionResponse::invalid(format!("not an admission review: {e}")),
    };
    Json(response.into_review())
}

/// How long the API server waits on the webhook by default, in seconds:
/// an evaluation takes well under a millisecond, so a slow answer means a
/// stuck replica, and a write should fail fast rather than hang kubectl.
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_the_endpoint_host() {
        let url = Endpoint::Url("https://127.0.0.1:9443/validate".into());
        assert_eq!(url.hosts(), ["127.0.0.1"]);
        let service = Endpoint::Service {
            namespace: "autoglm".into(),
            name: "operator".into(),
            port: 443,
        };
        assert_eq!(
            service.hosts(),
            ["operator.autoglm.svc", "operator.autoglm.svc.cluster.local"]
        );
    }

    #[test]
    fn the_configuration_sends_only_modelservice_writes_of_the_watched_namespaces() {
        let settings = WebhookSettings {
            addr: "127.0.0.1:9443".parse().unwrap(),
            endpoint: Endpoint::Url("https://127.0.0.1:9443/validate".into()),
            certificate: Certificate::SelfSigned {
                namespace: "x".into(),
            },
            failure_policy: "Fail".into(),
            timeout_seconds: 5,
            namespaces: vec!["team-a".into()],
            policies_namespace: "autoglm-system".into(),
            trusted_users: Vec::new(),
        };
        let config = serde_json::to_value(configuration(&settings, b"CA")).unwrap();
        let hook = &config["webhooks"][0];
        assert_eq!(
            hook["rules"][0]["resources"],
            serde_json::json!(["modelservices", "modelservices/scale"])
        );
        assert_eq!(
            hook["rules"][0]["operations"],
            serde_json::json!(["CREATE", "UPDATE"])
        );
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(
            hook["namespaceSelector"]["matchExpressions"][0]["values"],
            serde_json::json!(["team-a"])
        );
        assert_eq!(hook["clientConfig"]["caBundle"], "Q0E=");
    }
}
