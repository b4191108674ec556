//! The command line of the `signoff` binary: `signoff serve`.
//!
//! Every flag has an environment variable of the same meaning. Without
//! `--dev`, the server refuses to start unless it is given `--rules` and a
//! way to sign in (`--principals`, or OpenID Connect with `--oidc-issuer`,
//! `--oidc-audience` and `--oidc-jwks`, which go together), and refuses a principals file that holds one of the
//! published demo tokens; with `--dev` it listens on loopback only, fills what
//! is missing with the demo set-up of [`super::demo`] and prints the demo
//! tokens. `--dev` is the only way to the demo principals and rules.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use signoff_core::{Rules, Violation};
use tokio::net::TcpListener;

use super::auth::Principals;
use super::oidc::{OidcError, OidcSettings};
use super::{Config, DEFAULT_PKG_DIR, DEFAULT_WWW_DIR, ServerError, ServingLimits, demo};

/// signoff: approvals for policy changes.
#[derive(Debug, Parser)]
#[command(name = "signoff", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (and the editor).
    Serve(Box<ServeArgs>),
    /// Check the audit chain of exported data.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// The subcommands of `signoff audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a request (JSON, as `GET /v1/requests/{id}` answers it) or an
    /// events export (JSON lines): exit 0 when every chain holds, 1 naming
    /// the first entry that breaks one, 2 when the file is neither.
    Verify {
        /// The file to check.
        file: PathBuf,
    },
}

/// The flags of `signoff serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SIGNOFF_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Redis URL (`redis://host:port`, or comma-separated cluster nodes);
    /// absent: an embedded in-memory cache.
    #[arg(long, env = "SIGNOFF_REDIS_URL")]
    pub redis_url: Option<String>,
    /// The rules document (JSON) in force at start.
    #[arg(long, env = "SIGNOFF_RULES", value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The principals file: a JSON array of `{ id, roles, tokenSha256 }`.
    #[arg(long, env = "SIGNOFF_PRINCIPALS", value_name = "FILE")]
    pub principals: Option<PathBuf>,
    /// OpenID Connect sign-in: the issuer (`iss`) of the JWTs accepted.
    /// Goes with --oidc-audience and --oidc-jwks.
    #[arg(long, env = "SIGNOFF_OIDC_ISSUER", value_name = "ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The audience a JWT's `aud` must hold (e.g. this server's client id).
    #[arg(long, env = "SIGNOFF_OIDC_AUDIENCE", value_name = "AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The issuer's signing keys (JWKS): a file, or an `https://` URL
    /// (`http://` on loopback only); refetched at most once a minute when a
    /// token names an unknown `kid`.
    #[arg(long, env = "SIGNOFF_OIDC_JWKS", value_name = "FILE|URL")]
    pub oidc_jwks: Option<String>,
    /// The claim holding the caller's roles: an array of strings or a
    /// space-separated string.
    #[arg(
        long,
        env = "SIGNOFF_OIDC_ROLES_CLAIM",
        value_name = "CLAIM",
        default_value = "roles"
    )]
    pub oidc_roles_claim: String,
    /// The claim holding the caller's principal id.
    #[arg(
        long,
        env = "SIGNOFF_OIDC_ID_CLAIM",
        value_name = "CLAIM",
        default_value = "sub"
    )]
    pub oidc_id_claim: String,
    /// Demo mode: loopback only, demo rules and principals (tokens printed).
    #[arg(long, env = "SIGNOFF_DEV")]
    pub dev: bool,
    /// The editor's static files, served at `/`.
    #[arg(long, env = "SIGNOFF_WWW_DIR", value_name = "DIR", default_value = DEFAULT_WWW_DIR)]
    pub www_dir: PathBuf,
    /// The JS package, served at `/pkg/`.
    #[arg(long, env = "SIGNOFF_PKG_DIR", value_name = "DIR", default_value = DEFAULT_PKG_DIR)]
    pub pkg_dir: PathBuf,
    /// A request head must arrive within this many milliseconds, else the
    /// connection is closed.
    #[arg(long, env = "SIGNOFF_HEAD_TIMEOUT_MS", value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub head_timeout_ms: u64,
    /// A request body must arrive within this many milliseconds, else the
    /// call is answered 408 and the connection closed.
    #[arg(long, env = "SIGNOFF_BODY_TIMEOUT_MS", value_name = "MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,
    /// Connections open at once; more wait to be accepted.
    #[arg(long, env = "SIGNOFF_MAX_CONNECTIONS", value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Calls one principal may have in flight; more are answered 429.
    #[arg(long, env = "SIGNOFF_MAX_INFLIGHT_PER_PRINCIPAL", value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_inflight_per_principal: u64,
    /// The store's partitions (1..=1024), fixed for its life: a store
    /// records it at first start and refuses another number later.
    #[arg(long, env = "SIGNOFF_PARTITIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub partitions: u16,
    /// Start even when Redis's `maxmemory-policy` may evict keys (and so
    /// delete requests).
    #[arg(long, env = "SIGNOFF_ALLOW_EVICTION")]
    pub allow_eviction: bool,
    /// Replicas that must hold each commit before it answers (Redis `WAIT`).
    #[arg(long, env = "SIGNOFF_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
    /// The bearer token `/metrics` asks for; absent, `/metrics` is open.
    #[arg(
        long,
        env = "SIGNOFF_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// How long events are kept: seconds, or a number with `s`, `m`, `h` or
    /// `d` (`14d`). The contract promises at least 7 days (the default);
    /// less is accepted with a warning.
    #[arg(long, env = "SIGNOFF_EVENT_RETENTION", value_name = "DURATION",
          default_value = "7d", value_parser = parse_retention)]
    pub event_retention: std::time::Duration,
    /// Webhooks: a JSON array of `{ url, secret, events }` (`events`: event
    /// types or patterns such as `request.*`). Each matching event is POSTed,
    /// signed, at least once and in order.
    #[arg(long, env = "SIGNOFF_WEBHOOKS", value_name = "FILE")]
    pub webhooks: Option<PathBuf>,
    /// How long one webhook delivery may take, connection included.
    #[arg(long, env = "SIGNOFF_WEBHOOK_TIMEOUT_MS", value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub webhook_timeout_ms: u64,
    /// How long a failing webhook delivery is retried before the event is
    /// given up (counted, logged) and the next one goes.
    #[arg(long, env = "SIGNOFF_WEBHOOK_GIVE_UP_AFTER_S", value_name = "SECONDS",
          default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_give_up_after_s: u64,
}

/// The retention the contract promises.
const MIN_ADVISED_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// The longest retention accepted: ten years.
const MAX_RETENTION_S: u64 = 10 * 365 * 24 * 3600;

/// `--event-retention`: whole seconds, or a whole number with a unit (`s`,
/// `m`, `h`, `d`), from 1 s to ten years.
fn parse_retention(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((at, unit @ ('s' | 'm' | 'h' | 'd'))) => (&text[..at], unit),
        _ => (text, 's'),
    };
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 604800, 168h or 7d"))?;
    let per_unit = match unit {
        'm' => 60,
        'h' => 3600,
        'd' => 24 * 3600,
        _ => 1,
    };
    let seconds = count.saturating_mul(per_unit);
    if !(1..=MAX_RETENTION_S).contains(&seconds) {
        return Err(format!("`{text}` is outside 1 s to 10 years"));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// Why `signoff serve` would not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No principals, no OIDC and no `--dev`.
    #[error(
        "refusing to start without principals: pass --principals FILE (a JSON array of \
         {{ \"id\", \"roles\": [..], \"tokenSha256\": \"<hex sha256 of the token>\" }}), \
         or OpenID Connect sign-in (--oidc-issuer, --oidc-audience and --oidc-jwks), \
         or --dev for the demo principals"
    )]
    NoPrincipals,
    /// Some of the three OIDC flags without the others.
    #[error("--oidc-issuer, --oidc-audience and --oidc-jwks go together; missing: {0}")]
    OidcIncomplete(String),
    /// An OIDC setting is refused.
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// The webhooks file is refused.
    #[error(transparent)]
    Webhooks(#[from] super::webhooks::EndpointsError),
    /// No rules and no `--dev`.
    #[error(
        "refusing to start without rules: pass --rules FILE (a JSON rules document), or --dev for the demo rules"
    )]
    NoRules,
    /// A file could not be read.
    #[error("cannot read `{path}`: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file is invalid.
    #[error("`{path}` is not a valid {what}:\n{problems}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Rules or principals.
        what: &'static str,
        /// One line per problem.
        problems: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on `{address}`: {error}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        error: std::io::Error,
    },
    /// A principals file holding a published demo token, without `--dev`.
    #[error(
        "`{path}` gives `{principal}` the public demo token `{token}`; refusing to start \
         without --dev, since everybody knows that token: give `{principal}` a token of \
         its own (for instance from `openssl rand -hex 32`) and list its sha256"
    )]
    DemoToken {
        /// The principals file.
        path: PathBuf,
        /// The principal holding it.
        principal: String,
        /// The demo token (public by design).
        token: &'static str,
    },
    /// `--dev` with an address another machine could reach.
    #[error(
        "--dev serves well-known demo tokens and listens on loopback only; `{0}` is not a loopback address"
    )]
    DevNotLoopback(String),
    /// The server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

fn problems_text(problems: &[Violation]) -> String {
    problems
        .iter()
        .map(|item| {
            let path = if item.path.is_empty() {
                "(document)"
            } else {
                item.path.as_str()
            };
            format!("  - {path}: {} ({})", item.message, code_name(item))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn code_name(item: &Violation) -> String {
    serde_json::to_value(item.code)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path).map_err(|error| StartError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Loads the rules file named by `path`.
pub fn load_rules(path: &Path) -> Result<Rules, StartError> {
    Rules::parse_str(&read(path)?).map_err(|problems| StartError::Invalid {
        path: path.to_owned(),
        what: "rules document",
        problems: problems_text(&problems),
    })
}

/// Refuses principals that hold one of the published demo tokens.
fn refuse_demo_tokens(path: &Path, principals: &Principals) -> Result<(), StartError> {
    for (_, _, token) in demo::PRINCIPALS {
        if let Some(principal) = principals.find(token) {
            return Err(StartError::DemoToken {
                path: path.to_owned(),
                principal: principal.id.clone(),
                token,
            });
        }
    }
    Ok(())
}

/// Loads the principals file named by `path`.
pub fn load_principals(path: &Path) -> Result<Principals, StartError> {
    Principals::parse_str(&read(path)?).map_err(|problems| StartError::Invalid {
        path: path.to_owned(),
        what: "principals file",
        problems: problems_text(&problems),
    })
}

impl ServeArgs {
    /// The OIDC settings of the `--oidc-*` flags, if any (an empty value
    /// counts as absent).
    fn oidc(&self) -> Result<Option<OidcSettings>, StartError> {
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let flags = [
            ("--oidc-issuer", given(&self.oidc_issuer)),
            ("--oidc-audience", given(&self.oidc_audience)),
            ("--oidc-jwks", given(&self.oidc_jwks)),
        ];
        match flags {
            [(_, Some(issuer)), (_, Some(audience)), (_, Some(jwks))] => {
                let mut settings = OidcSettings::new(&issuer, &audience, &jwks)?;
                settings.roles_claim = self.oidc_roles_claim.trim().to_owned();
                settings.id_claim = self.oidc_id_claim.trim().to_owned();
                if settings.roles_claim.is_empty() {
                    return Err(OidcError::Empty("--oidc-roles-claim").into());
                }
                if settings.id_claim.is_empty() {
                    return Err(OidcError::Empty("--oidc-id-claim").into());
                }
                Ok(Some(settings))
            }
            [(_, None), (_, None), (_, None)] => Ok(None),
            _ => Err(StartError::OidcIncomplete(
                flags
                    .iter()
                    .filter(|(_, value)| value.is_none())
                    .map(|(flag, _)| *flag)
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// The configuration these flags describe, and whether the demo
    /// principals are in use (their tokens are then printed).
    pub fn config(&self) -> Result<(Config, bool), StartError> {
        let rules = match (&self.rules, self.dev) {
            (Some(path), _) => load_rules(path)?,
            (None, true) => demo::rules().map_err(|problems| StartError::Invalid {
                path: PathBuf::from("host/demo/rules.json"),
                what: "rules document",
                problems: problems_text(&problems),
            })?,
            (None, false) => return Err(StartError::NoRules),
        };
        let oidc = self.oidc()?;
        let (principals, demo_principals) = match (&self.principals, self.dev) {
            (Some(path), dev) => {
                let principals = load_principals(path)?;
                if !dev {
                    refuse_demo_tokens(path, &principals)?;
                }
                (principals, false)
            }
            (None, true) => (demo::principals(), true),
            (None, false) if oidc.is_some() => (Principals::from_tokens(std::iter::empty()), false),
            (None, false) => return Err(StartError::NoPrincipals),
        };
        let mut config = Config::new(rules, principals);
        config.oidc = oidc;
        config.redis_url = self.redis_url.clone().filter(|url| !url.trim().is_empty());
        config.www_dir = self.www_dir.clone();
        config.pkg_dir = self.pkg_dir.clone();
        config.limits = ServingLimits {
            head_timeout: std::time::Duration::from_millis(self.head_timeout_ms),
            body_timeout: std::time::Duration::from_millis(self.body_timeout_ms),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            max_inflight_per_principal: usize::try_from(self.max_inflight_per_principal)
                .unwrap_or(usize::MAX),
            ..ServingLimits::default()
        };
        config.storage = crate::engine::StorageOptions {
            partitions: self.partitions,
            allow_eviction: self.allow_eviction,
            redis_wait_replicas: self.redis_wait_replicas,
            event_retention: self.event_retention,
        };
        if self.event_retention < MIN_ADVISED_RETENTION {
            tracing::warn!(
                retention_s = self.event_retention.as_secs(),
                "events are kept less than the 7 days the contract promises"
            );
        }
        config.metrics_token = self
            .metrics_token
            .clone()
            .filter(|token| !token.trim().is_empty());
        if let Some(path) = &self.webhooks {
            config.webhooks = super::webhooks::read(path)?;
        }
        config.webhook_settings = super::webhooks::Settings {
            timeout: std::time::Duration::from_millis(self.webhook_timeout_ms),
            give_up_after: std::time::Duration::from_secs(self.webhook_give_up_after_s),
            ..super::webhooks::Settings::default()
        };
        Ok((config, demo_principals))
    }
}

/// Installs the JSON log subscriber (level from `RUST_LOG`, default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .try_init();
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: finishing the calls in flight"),
        () = terminate => tracing::info!("SIGTERM: finishing the calls in flight"),
    }
}

/// `signoff serve`: loads the configuration, binds, and serves until a
/// signal.
pub async fn serve(args: ServeArgs) -> Result<(), StartError> {
    let (config, demo_principals) = args.config()?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|error| StartError::Listen {
            address: args.listen.clone(),
            error,
        })?;
    let address = listener.local_addr().map_err(|error| StartError::Listen {
        address: args.listen.clone(),
        error,
    })?;
    if args.dev && !address.ip().is_loopback() {
        return Err(StartError::DevNotLoopback(address.to_string()));
    }
    init_logging();
    if args.dev {
        let mut banner = demo::banner(&address.to_string());
        if !demo_principals {
            banner = format!(
                "signoff is running in demo mode (--dev) on http://{address} with the principals of --principals\n"
            );
        }
        // Standard output, like the logs; a closed stdout is not a reason to
        // stop (print! would panic).
        let mut out = std::io::stdout().lock();
        let _ = std::io::Write::write_all(&mut out, banner.as_bytes());
        let _ = std::io::Write::flush(&mut out);
    }
    super::run(listener, config, shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_retention_takes_seconds_or_a_unit() {
        assert_eq!(args(&[]).event_retention.as_secs(), 7 * 24 * 3600);
        for (text, seconds) in [
            ("60", 60),
            ("90s", 90),
            ("5m", 300),
            ("2h", 7200),
            ("14d", 1_209_600),
        ] {
            assert_eq!(parse_retention(text).unwrap().as_secs(), seconds, "{text}");
        }
        assert_eq!(parse_retention("3650d").unwrap().as_secs(), MAX_RETENTION_S);
        for bad in ["", "0", "0d", "3651d", "7 days", "-1", "1.5h", "d", "7w"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
        let config = args(&["--dev", "--event-retention", "30d"])
            .config()
            .unwrap()
            .0;
        assert_eq!(config.storage.event_retention.as_secs(), 30 * 24 * 3600);
    }

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["signoff", "serve"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => *args,
            Command::Audit(_) => panic!("`signoff serve` parsed as another command"),
        }
    }

    #[test]
    fn audit_verify_takes_one_file() {
        let command = Cli::try_parse_from(["signoff", "audit", "verify", "r.json"])
            .unwrap()
            .command;
        assert!(matches!(
            command,
            Command::Audit(AuditCommand::Verify { file }) if file == Path::new("r.json")
        ));
        assert!(Cli::try_parse_from(["signoff", "audit", "verify"]).is_err());
    }

    #[test]
    fn without_dev_rules_and_principals_are_required() {
        assert!(matches!(args(&[]).config(), Err(StartError::NoRules)));
        let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/rules.json");
        assert!(matches!(
            args(&["--rules", rules]).config(),
            Err(StartError::NoPrincipals)
        ));
        let principals = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/principals.json");
        let (config, demo) = args(&["--dev", "--rules", rules, "--principals", principals])
            .config()
            .unwrap();
        assert!(!demo);
        assert_eq!(config.principals.len(), 5);
        let (config, demo) = args(&["--dev"]).config().unwrap();
        assert!(demo);
        assert_eq!(config.redis_url, None);
    }

    #[test]
    fn the_oidc_flags_go_together() {
        let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/rules.json");
        let error = args(&["--rules", rules, "--oidc-issuer", "https://idp.example"])
            .config()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("go together") && error.contains("--oidc-audience, --oidc-jwks"),
            "{error}"
        );
        let error = args(&[
            "--rules",
            rules,
            "--oidc-jwks",
            "keys.json",
            "--oidc-audience",
            "x",
        ])
        .config()
        .unwrap_err()
        .to_string();
        assert!(error.ends_with("missing: --oidc-issuer"), "{error}");
        let oidc = [
            "--oidc-issuer",
            "https://idp.example",
            "--oidc-audience",
            "signoff",
        ];
        let mut plain = vec!["--rules", rules];
        plain.extend(oidc);
        plain.extend(["--oidc-jwks", "http://idp.example/keys"]);
        let error = args(&plain).config().unwrap_err().to_string();
        assert!(error.contains("loopback"), "{error}");
        // Only OIDC, no principals file: enough to start.
        let mut only = vec!["--rules", rules];
        only.extend(oidc);
        only.extend([
            "--oidc-jwks",
            "https://idp.example/keys",
            "--oidc-id-claim",
            "email",
        ]);
        let (config, demo) = args(&only).config().unwrap();
        assert!(!demo);
        assert!(config.principals.is_empty());
        let settings = config.oidc.unwrap();
        assert_eq!(
            (settings.id_claim.as_str(), settings.roles_claim.as_str()),
            ("email", "roles")
        );
    }

    #[test]
    fn a_demo_token_is_refused_without_dev() {
        let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/rules.json");
        let demo_file = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/principals.json");
        let error = args(&["--rules", rules, "--principals", demo_file])
            .config()
            .unwrap_err();
        assert!(matches!(error, StartError::DemoToken { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains("alice") && text.contains("--dev"), "{text}");

        // One demo token among fresh ones is enough to refuse.
        let dir = std::env::temp_dir().join(format!("signoff-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("principals.json");
        let fresh = hex::encode(super::super::auth::token_digest("a-fresh-token"));
        let admin = hex::encode(super::super::auth::token_digest("dev-admin"));
        std::fs::write(
            &file,
            format!(
                r#"[{{"id":"ops","roles":["admin"],"tokenSha256":"{fresh}"}},
                    {{"id":"root","roles":["admin"],"tokenSha256":"{admin}"}}]"#
            ),
        )
        .unwrap();
        let path = file.to_str().unwrap();
        match args(&["--rules", rules, "--principals", path]).config() {
            Err(StartError::DemoToken { principal, .. }) => assert_eq!(principal, "root"),
            other => panic!("{other:?}"),
        }
        std::fs::write(
            &file,
            format!(r#"[{{"id":"ops","roles":["admin"],"tokenSha256":"{fresh}"}}]"#),
        )
        .unwrap();
        let (config, demo) = args(&["--rules", rules, "--principals", path])
            .config()
            .unwrap();
        assert!(!demo);
        assert_eq!(config.principals.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_refused_with_every_problem() {
        let dir = std::env::temp_dir().join(format!("signoff-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("principals.json");
        std::fs::write(&file, r#"[{ "id": "", "tokenSha256": "zz" }]"#).unwrap();
        let error = load_principals(&file).unwrap_err().to_string();
        assert!(error.contains("[0].id"), "{error}");
        assert!(error.contains("[0].tokenSha256"), "{error}");
        let missing = load_rules(&dir.join("absent.json")).unwrap_err();
        assert!(matches!(missing, StartError::Read { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
