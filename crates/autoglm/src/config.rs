//! One typed configuration: file < `AUTOGLM_*` environment < flags, checked
//! before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Flags of `autoglm console` and `autoglm up`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of: home, addr, tls_cert, tls_key, tls_self_signed, grafana_url,
    /// nacos_addr.
    #[arg(long, env = "AUTOGLM_CONFIG")]
    config: Option<PathBuf>,
    /// Folder for the database, artifacts and the admin token [default: ./.autoglm].
    #[arg(long, env = "AUTOGLM_HOME")]
    home: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "AUTOGLM_ADDR")]
    addr: Option<String>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, env = "AUTOGLM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "AUTOGLM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate for localhost (for trying it out).
    #[arg(long, env = "AUTOGLM_TLS_SELF_SIGNED", num_args = 0..=1, default_missing_value = "true")]
    tls_self_signed: Option<bool>,
    /// The Grafana holding deploy/grafana's dashboards, e.g. https://grafana.example.com:
    /// a service's page links to them.
    #[arg(long, env = "AUTOGLM_GRAFANA_URL")]
    grafana_url: Option<String>,
    /// Address of the Nacos-compatible config API (its gRPC on the port + 1000,
    /// as Nacos clients expect), or `off` [default: 127.0.0.1:8848].
    #[arg(long, env = "AUTOGLM_NACOS_ADDR")]
    nacos_addr: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    home: Option<PathBuf>,
    addr: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    grafana_url: Option<String>,
    nacos_addr: Option<String>,
}

/// How to serve HTTPS, if at all.
#[derive(Debug, Clone)]
pub enum Tls {
    /// Plain HTTP.
    Off,
    /// These PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate generated under the home folder.
    SelfSigned,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Home folder.
    pub home: PathBuf,
    /// Listen address.
    pub addr: SocketAddr,
    /// HTTPS.
    pub tls: Tls,
    /// The first admin's password, from `AUTOGLM_ADMIN_PASSWORD` only (never a
    /// flag, which other users could read in the process list).
    pub admin_password: Option<String>,
    /// Where the dashboards are.
    pub grafana_url: Option<String>,
    /// Where the Nacos-compatible API listens (its gRPC on the port + 1000); `None`: off.
    pub nacos_addr: Option<SocketAddr>,
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {}", path.display(), e.message()))
}

impl Config {
    /// Merges the sources and checks the result.
    pub fn load(args: ServeArgs) -> Result<Config, String> {
        let file = args
            .config
            .as_deref()
            .map(read_file)
            .transpose()?
            .unwrap_or_default();
        let home = args
            .home
            .or(file.home)
            .unwrap_or_else(|| PathBuf::from("./.autoglm"));
        let addr_text = args
            .addr
            .or(file.addr)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let addr: SocketAddr = addr_text.parse().map_err(|_| {
            format!("addr {addr_text:?} is not HOST:PORT with an IP address (e.g. 127.0.0.1:8080)")
        })?;
        let cert = args.tls_cert.or(file.tls_cert);
        let key = args.tls_key.or(file.tls_key);
        let self_signed = args
            .tls_self_signed
            .or(file.tls_self_signed)
            .unwrap_or(false);
        let tls = match (cert, key, self_signed) {
            (Some(_), Some(_), true) => {
                return Err("choose either tls_cert/tls_key or tls_self_signed".into());
            }
            (Some(cert), Some(key), false) => {
                for f in [&cert, &key] {
                    if !f.is_file() {
                        return Err(format!("TLS file {} does not exist", f.display()));
                    }
                }
                Tls::Files { cert, key }
            }
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err("tls_cert and tls_key go together".into());
            }
            (None, None, true) => Tls::SelfSigned,
            (None, None, false) => Tls::Off,
        };
        if home.exists() && !home.is_dir() {
            return Err(format!(
                "home {} exists and is not a folder",
                home.display()
            ));
        }
        let admin_password = std::env::var("AUTOGLM_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        if admin_password
            .as_ref()
            .is_some_and(|p| p.chars().count() < 12)
        {
            return Err("AUTOGLM_ADMIN_PASSWORD must be at least 12 characters".into());
        }
        let grafana_url = args.grafana_url.or(file.grafana_url);
        if let Some(url) = &grafana_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "grafana_url {url:?} must be an http:// or https:// URL"
            ));
        }
        let nacos_text = args
            .nacos_addr
            .or(file.nacos_addr)
            .unwrap_or_else(|| "127.0.0.1:8848".to_owned());
        let nacos_addr = if nacos_text == "off" {
            None
        } else {
            let addr: SocketAddr = nacos_text.parse().map_err(|_| {
                format!("nacos_addr {nacos_text:?} is not HOST:PORT with an IP address (e.g. 127.0.0.1:8848) or off")
            })?;
            if addr.port() > u16::MAX - autoglm_nacos::GRPC_OFFSET {
                return Err(format!(
                    "nacos_addr port {} leaves no room for its gRPC port (+{})",
                    addr.port(),
                    autoglm_nacos::GRPC_OFFSET
                ));
            }
            Some(addr)
        };
        Ok(Config {
            home,
            addr,
            tls,
            admin_password,
            grafana_url,
            nacos_addr,
        })
    }
}
