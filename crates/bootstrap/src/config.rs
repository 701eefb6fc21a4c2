//! Configuration from the environment (API.md's configuration table, plus `COUPON_ISSUE_MODE`
//! and `LOG_FORMAT`).
//!
//! Every variable is checked at start-up; the first bad one stops the server with one line that
//! names it (`PORT: invalid port "abc"`). An empty value counts as unset, so that
//! `DATABASE_URL=` in a compose file means "embedded".

use application::rate_limits::RateLimitSettings;
use application::{CouponIssueMode, ShopConfig, SigningKey, TokenKeys};
use domain::sales::BusinessCalendar;
use domain::wallet::WalletLimits;
use std::fmt;
use std::time::Duration;

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// `TOKEN_SIGNING_KEYS`: `<id>:<base64 secret>` entries separated by commas, the first signs;
/// the entry `store` (not first) keeps tokens signed by the store's secret verifying.
/// Secrets are base64 (standard or URL-safe alphabet, padding optional) of 32 bytes or more,
/// e.g. `openssl rand -base64 32`.
fn parse_token_keys(raw: &str) -> Result<TokenKeys, ConfigError> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabets = [
        GeneralPurpose::new(&base64::alphabet::STANDARD, lenient),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient),
    ];
    let fail = |message: String| invalid("TOKEN_SIGNING_KEYS", message);
    let mut keys = TokenKeys::default();
    for (position, entry) in raw.split(',').map(str::trim).enumerate() {
        if entry == TokenKeys::STORE {
            if position == 0 {
                return Err(fail(
                    "the first entry signs and must be a key, not \"store\"".into(),
                ));
            }
            keys.accept_store_secret = true;
            continue;
        }
        let (id, encoded) = entry.split_once(':').ok_or_else(|| {
            fail(format!(
                "entry {} is not <id>:<base64 secret>",
                position + 1
            ))
        })?;
        let secret = alphabets
            .iter()
            .find_map(|engine| engine.decode(encoded.trim()).ok())
            .ok_or_else(|| fail(format!("the secret of key {id:?} is not base64")))?;
        let key = SigningKey::new(id.trim(), secret).map_err(fail)?;
        if keys.configured.iter().any(|k| k.id() == key.id()) {
            return Err(fail(format!("key id {:?} appears twice", key.id())));
        }
        keys.configured.push(key);
    }
    Ok(keys)
}

fn invalid(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    #[default]
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

impl LogFormat {
    /// The default when `LOG_FORMAT` is unset: readable text for a person at a terminal, JSON
    /// for anything else (a service manager, a container runtime, a pipe to a log shipper).
    pub fn for_output(is_terminal: bool) -> Self {
        if is_terminal {
            Self::Pretty
        } else {
            Self::Json
        }
    }
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// PostgreSQL pool settings (used only with `DATABASE_URL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbPool {
    pub size: usize,
    pub wait_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for DbPool {
    fn default() -> Self {
        Self {
            size: 16,
            wait_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `HOST` [127.0.0.1].
    pub host: String,
    /// `PORT` [8080]; 0 picks a free port (tests).
    pub port: u16,
    /// `ADMIN_TOKEN`; generated and printed once when unset.
    pub admin_token: Option<Secret>,
    /// `DATABASE_URL`; unset: the embedded in-memory store.
    pub database_url: Option<Secret>,
    /// `REDIS_URL`; unset: the in-process gate and ranking.
    pub redis_url: Option<Secret>,
    /// `KAFKA_BROKERS`; empty: the in-process event bus.
    pub kafka_brokers: Vec<String>,
    /// `DATA_PLATFORM_URL`; unset: events are logged.
    pub data_platform_url: Option<String>,
    /// `DB_POOL_SIZE` [16], `DB_POOL_TIMEOUT_MS` [2000] (wait for a free connection),
    /// `DB_STATEMENT_TIMEOUT_MS` [5000].
    pub db_pool: DbPool,
    /// `RATE_LIMIT_PER_SECOND` [50] and `RATE_LIMIT_BURST` [100]: requests per authenticated
    /// user; `ANON_RATE_LIMIT_PER_SECOND` [5] and `ANON_RATE_LIMIT_BURST` [20]: sign-ups
    /// without a token and, separately, failed authentications per client address. A rate of
    /// 0 disables. Shared by every instance when `REDIS_URL` is set.
    pub rate_limits: RateLimitSettings,
    /// `TRUSTED_PROXIES` [none]: comma-separated IPs/CIDRs whose `X-Forwarded-For` names the
    /// client.
    pub trusted_proxies: http_actix::TrustedProxies,
    /// `METRICS_TOKEN` [unset]: when set, `/metrics` needs it as a bearer token.
    pub metrics_token: Option<Secret>,
    /// `BODY_TIMEOUT_MS` [5000]: how long a request body may take to arrive once its head has;
    /// a client that stalls longer is answered 408 and its connection closed.
    pub body_timeout: Duration,
    /// `REDIS_KEY_PREFIX` [empty]: lets several shops share one Redis.
    pub redis_key_prefix: String,
    /// `KAFKA_TOPIC_PREFIX` [empty]: topic names are this plus the defaults of EVENTS.md
    /// (`order.paid`, ...), so several shops (or environments) can share one cluster.
    pub kafka_topic_prefix: String,
    /// `MIN_CHARGE`, `MAX_BALANCE`, `ORDER_PAYMENT_TTL_SECONDS`, `BUSINESS_TZ_OFFSET`,
    /// `COUPON_ISSUE_MODE`.
    pub shop: ShopConfig,
    /// `LOG_FORMAT` [`pretty` when standard output is a terminal, else `json`].
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            admin_token: None,
            database_url: None,
            redis_url: None,
            kafka_brokers: Vec::new(),
            data_platform_url: None,
            db_pool: DbPool::default(),
            rate_limits: RateLimitSettings::default(),
            trusted_proxies: http_actix::TrustedProxies::none(),
            metrics_token: None,
            body_timeout: http_actix::BodyTimeout::DEFAULT,
            redis_key_prefix: String::new(),
            kafka_topic_prefix: String::new(),
            shop: ShopConfig::default(),
            log_format: LogFormat::default(),
        }
    }
}

/// Longest accepted `ORDER_PAYMENT_TTL_SECONDS`: 30 days.
const MAX_PAYMENT_TTL_SECONDS: i64 = 30 * 24 * 3600;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = Self::default();

        if let Some(raw) = get("HOST") {
            config.host = parse_host(&raw)?;
        }
        if let Some(raw) = get("PORT") {
            config.port = raw
                .trim()
                .parse()
                .map_err(|_| invalid("PORT", format!("invalid port {raw:?}")))?;
        }
        if let Some(raw) = get("ADMIN_TOKEN") {
            // Short tokens are accepted (start-up warns about them): refusing them would break
            // deployments that chose one, and the length is the operator's call.
            let ok = (1..=256).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(invalid(
                    "ADMIN_TOKEN",
                    "must be 1 to 256 printable ASCII characters without spaces",
                ));
            }
            config.admin_token = Some(Secret::new(raw));
        }
        if let Some(raw) = get("TOKEN_SIGNING_KEYS") {
            config.shop.token_keys = parse_token_keys(&raw)?;
        }
        if let Some(raw) = get("DATABASE_URL") {
            check_url("DATABASE_URL", &raw, &["postgres", "postgresql"])?;
            config.database_url = Some(Secret::new(raw));
        }
        if let Some(raw) = get("REDIS_URL") {
            check_url("REDIS_URL", &raw, &["redis", "rediss"])?;
            config.redis_url = Some(Secret::new(raw));
        }
        if let Some(raw) = get("KAFKA_BROKERS") {
            config.kafka_brokers = parse_brokers(&raw)?;
        }
        if let Some(raw) = get("DATA_PLATFORM_URL") {
            check_url("DATA_PLATFORM_URL", &raw, &["http", "https"])?;
            config.data_platform_url = Some(raw.trim_end_matches('/').to_owned());
        }

        let limits = &mut config.rate_limits;
        if let Some(raw) = get("RATE_LIMIT_PER_SECOND") {
            limits.per_user.per_second =
                parse_int("RATE_LIMIT_PER_SECOND", &raw, 0, 1_000_000)? as u32;
        }
        if let Some(raw) = get("RATE_LIMIT_BURST") {
            limits.per_user.burst = parse_int("RATE_LIMIT_BURST", &raw, 1, 1_000_000)? as u32;
        }
        if let Some(raw) = get("ANON_RATE_LIMIT_PER_SECOND") {
            limits.anonymous.per_second =
                parse_int("ANON_RATE_LIMIT_PER_SECOND", &raw, 0, 1_000_000)? as u32;
        }
        if let Some(raw) = get("ANON_RATE_LIMIT_BURST") {
            limits.anonymous.burst = parse_int("ANON_RATE_LIMIT_BURST", &raw, 1, 1_000_000)? as u32;
        }
        if let Some(raw) = get("TRUSTED_PROXIES") {
            config.trusted_proxies = http_actix::TrustedProxies::parse(&raw)
                .map_err(|e| invalid("TRUSTED_PROXIES", e))?;
        }
        if let Some(raw) = get("METRICS_TOKEN") {
            let ok = (1..=256).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(invalid(
                    "METRICS_TOKEN",
                    "must be 1 to 256 printable ASCII characters without spaces",
                ));
            }
            config.metrics_token = Some(Secret::new(raw));
        }
        if let Some(raw) = get("BODY_TIMEOUT_MS") {
            config.body_timeout =
                Duration::from_millis(parse_int("BODY_TIMEOUT_MS", &raw, 1, 600_000)? as u64);
        }
        if let Some(raw) = get("REDIS_KEY_PREFIX") {
            if raw.contains(['{', '}']) || raw.len() > 64 {
                return Err(invalid(
                    "REDIS_KEY_PREFIX",
                    "at most 64 characters, without { or }",
                ));
            }
            config.redis_key_prefix = raw;
        }
        if let Some(raw) = get("KAFKA_TOPIC_PREFIX") {
            let ok = raw.len() <= 100
                && raw
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(invalid(
                    "KAFKA_TOPIC_PREFIX",
                    "at most 100 characters of [a-zA-Z0-9._-]",
                ));
            }
            config.kafka_topic_prefix = raw;
        }
        if let Some(raw) = get("DB_POOL_SIZE") {
            config.db_pool.size = parse_int("DB_POOL_SIZE", &raw, 1, 1_000)? as usize;
        }
        if let Some(raw) = get("DB_POOL_TIMEOUT_MS") {
            config.db_pool.wait_timeout =
                Duration::from_millis(parse_int("DB_POOL_TIMEOUT_MS", &raw, 1, 600_000)? as u64);
        }
        if let Some(raw) = get("DB_STATEMENT_TIMEOUT_MS") {
            config.db_pool.statement_timeout =
                Duration::from_millis(
                    parse_int("DB_STATEMENT_TIMEOUT_MS", &raw, 1, 3_600_000)? as u64
                );
        }

        let mut wallet = WalletLimits::default();
        if let Some(raw) = get("MIN_CHARGE") {
            wallet.min_charge = parse_int("MIN_CHARGE", &raw, 1, i64::MAX)?;
        }
        if let Some(raw) = get("MAX_BALANCE") {
            wallet.max_balance = parse_int("MAX_BALANCE", &raw, 1, i64::MAX / 2)?;
        }
        if wallet.max_balance < wallet.min_charge {
            return Err(invalid(
                "MAX_BALANCE",
                format!(
                    "{} is below MIN_CHARGE {}",
                    wallet.max_balance, wallet.min_charge
                ),
            ));
        }
        config.shop.wallet = wallet;
        if let Some(raw) = get("ORDER_PAYMENT_TTL_SECONDS") {
            let seconds = parse_int(
                "ORDER_PAYMENT_TTL_SECONDS",
                &raw,
                1,
                MAX_PAYMENT_TTL_SECONDS,
            )?;
            config.shop.payment_ttl = time::Duration::seconds(seconds);
        }
        if let Some(raw) = get("BUSINESS_TZ_OFFSET") {
            let offset = BusinessCalendar::parse_offset(raw.trim()).ok_or_else(|| {
                invalid(
                    "BUSINESS_TZ_OFFSET",
                    format!("invalid offset {raw:?} (expected like +09:00)"),
                )
            })?;
            config.shop.calendar = BusinessCalendar::new(offset);
        }
        if let Some(raw) = get("COUPON_ISSUE_MODE") {
            config.shop.coupon_issue_mode = match raw.trim().to_ascii_lowercase().as_str() {
                "sync" => CouponIssueMode::Sync,
                "async" => CouponIssueMode::Async,
                _ => {
                    return Err(invalid(
                        "COUPON_ISSUE_MODE",
                        format!("invalid mode {raw:?} (expected sync or async)"),
                    ));
                }
            };
        }
        config.log_format =
            LogFormat::for_output(std::io::IsTerminal::is_terminal(&std::io::stdout()));
        if let Some(raw) = get("LOG_FORMAT") {
            config.log_format = match raw.trim().to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => {
                    return Err(invalid(
                        "LOG_FORMAT",
                        format!("invalid format {raw:?} (expected json or pretty)"),
                    ));
                }
            };
        }
        Ok(config)
    }
}

fn parse_int(variable: &'static str, raw: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    match raw.trim().parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(v) => Err(invalid(
            variable,
            format!("{v} is out of range ({min} to {max})"),
        )),
        Err(_) => Err(invalid(variable, format!("invalid integer {raw:?}"))),
    }
}

fn parse_host(raw: &str) -> Result<String, ConfigError> {
    let host = raw.trim();
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let is_name = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if is_ip || is_name {
        Ok(host.to_owned())
    } else {
        Err(invalid("HOST", format!("invalid host {raw:?}")))
    }
}

/// `scheme://rest` with one of `schemes` and something after the `//`. Never echoes the value:
/// URLs carry passwords.
fn check_url(variable: &'static str, raw: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let valid = raw.split_once("://").is_some_and(|(scheme, rest)| {
        schemes.contains(&scheme.to_ascii_lowercase().as_str())
            && !rest.is_empty()
            && !rest.starts_with('/')
            && !raw.chars().any(char::is_whitespace)
    });
    if valid {
        Ok(())
    } else {
        Err(invalid(
            variable,
            format!(
                "invalid URL (expected {}://...)",
                schemes.join("://... or ")
            ),
        ))
    }
}

fn parse_brokers(raw: &str) -> Result<Vec<String>, ConfigError> {
    raw.split(',')
        .map(|broker| {
            let broker = broker.trim();
            let valid = broker.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if valid {
                Ok(broker.to_owned())
            } else {
                Err(invalid(
                    "KAFKA_BROKERS",
                    format!("invalid broker {broker:?} (expected host:port)"),
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_api_table() {
        let c = config(&[]).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8080));
        assert_eq!(c.shop.wallet.min_charge, 1);
        assert_eq!(c.shop.wallet.max_balance, 1_000_000);
        assert_eq!(c.shop.payment_ttl, time::Duration::seconds(900));
        assert_eq!(c.shop.calendar.offset.whole_hours(), 9);
        assert_eq!(c.shop.coupon_issue_mode, CouponIssueMode::Sync);
        assert!(c.admin_token.is_none() && c.database_url.is_none());
        assert!(c.kafka_brokers.is_empty());
        assert_eq!(c.body_timeout, Duration::from_secs(5));
        // Protective by default: anonymous work is bounded, /metrics is open (as before).
        assert_eq!(
            (
                c.rate_limits.anonymous.per_second,
                c.rate_limits.anonymous.burst
            ),
            (5, 20)
        );
        assert_eq!(
            (
                c.rate_limits.per_user.per_second,
                c.rate_limits.per_user.burst
            ),
            (50, 100)
        );
        assert!(c.trusted_proxies.is_empty() && c.metrics_token.is_none());
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("HOST", "0.0.0.0"),
            ("PORT", "9000"),
            ("ADMIN_TOKEN", "a-very-long-admin-token"),
            ("DATABASE_URL", "postgres://u:p@localhost/shop"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("KAFKA_BROKERS", "127.0.0.1:9092, kafka:9093"),
            ("DATA_PLATFORM_URL", "http://127.0.0.1:9999/"),
            ("MIN_CHARGE", "10000"),
            ("MAX_BALANCE", "2000000"),
            ("ORDER_PAYMENT_TTL_SECONDS", "60"),
            ("BUSINESS_TZ_OFFSET", "-05:30"),
            ("COUPON_ISSUE_MODE", "async"),
            ("LOG_FORMAT", "pretty"),
            ("BODY_TIMEOUT_MS", "1500"),
            ("RATE_LIMIT_PER_SECOND", "7"),
            ("RATE_LIMIT_BURST", "9"),
            ("ANON_RATE_LIMIT_PER_SECOND", "0"),
            ("ANON_RATE_LIMIT_BURST", "3"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ("METRICS_TOKEN", "scrape-me"),
        ])
        .unwrap();
        assert_eq!(c.body_timeout, Duration::from_millis(1500));
        assert_eq!((c.host.as_str(), c.port), ("0.0.0.0", 9000));
        assert_eq!(c.admin_token.unwrap().expose(), "a-very-long-admin-token");
        assert!(c.database_url.is_some() && c.redis_url.is_some());
        assert_eq!(c.kafka_brokers, ["127.0.0.1:9092", "kafka:9093"]);
        assert_eq!(
            c.data_platform_url.as_deref(),
            Some("http://127.0.0.1:9999")
        );
        assert_eq!(c.shop.wallet.min_charge, 10_000);
        assert_eq!(c.shop.wallet.max_balance, 2_000_000);
        assert_eq!(c.shop.payment_ttl, time::Duration::seconds(60));
        assert_eq!(c.shop.calendar.offset.whole_minutes(), -330);
        assert_eq!(c.shop.coupon_issue_mode, CouponIssueMode::Async);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.rate_limits.per_user.per_second, 7);
        assert_eq!(c.rate_limits.per_user.burst, 9);
        assert!(c.rate_limits.anonymous.is_disabled());
        assert_eq!(c.rate_limits.anonymous.burst, 3);
        assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert_eq!(c.metrics_token.unwrap().expose(), "scrape-me");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&str, &str)] = &[
            ("PORT", "abc"),
            ("PORT", "70000"),
            ("HOST", "not a host"),
            ("ADMIN_TOKEN", "has space"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "127.0.0.1:6379"),
            ("KAFKA_BROKERS", "kafka"),
            ("DATA_PLATFORM_URL", "ftp://x"),
            ("MIN_CHARGE", "0"),
            ("MAX_BALANCE", "1.5"),
            ("ORDER_PAYMENT_TTL_SECONDS", "-1"),
            ("BUSINESS_TZ_OFFSET", "Seoul"),
            ("COUPON_ISSUE_MODE", "later"),
            ("LOG_FORMAT", "xml"),
            ("BODY_TIMEOUT_MS", "0"),
            ("BODY_TIMEOUT_MS", "600001"),
            ("BODY_TIMEOUT_MS", "5s"),
            ("ANON_RATE_LIMIT_PER_SECOND", "-1"),
            ("ANON_RATE_LIMIT_BURST", "0"),
            ("TRUSTED_PROXIES", "10.0.0.0/40"),
            ("METRICS_TOKEN", "has space"),
        ];
        for (name, value) in cases {
            let e = config(&[(name, value)]).unwrap_err();
            assert_eq!(e.variable, *name, "{name}={value}");
        }
        assert_eq!(
            config(&[("PORT", "abc")]).unwrap_err().to_string(),
            r#"PORT: invalid port "abc""#
        );
        let e = config(&[("MIN_CHARGE", "500"), ("MAX_BALANCE", "100")]).unwrap_err();
        assert_eq!(e.variable, "MAX_BALANCE");
    }

    #[test]
    fn token_signing_keys_are_ids_and_base64_secrets_the_first_signing() {
        // 32 bytes: standard alphabet with padding, URL-safe without.
        let a = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let b = "_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-8";
        let c = config(&[(
            "TOKEN_SIGNING_KEYS",
            &format!(" k2026:{b} , k2025:{a}, store"),
        )])
        .unwrap();
        let keys = &c.shop.token_keys;
        let ids: Vec<&str> = keys.configured.iter().map(|k| k.id()).collect();
        assert_eq!(ids, ["k2026", "k2025"]);
        assert!(keys.accept_store_secret);
        assert!(!format!("{c:?}").contains(a) && !format!("{c:?}").contains(b));
        let c = config(&[("TOKEN_SIGNING_KEYS", &format!("k1:{a}"))]).unwrap();
        assert!(!c.shop.token_keys.accept_store_secret);
        assert!(config(&[]).unwrap().shop.token_keys.configured.is_empty());
        for bad in [
            format!("store,k1:{a}"),
            format!("k1:{a},k1:{b}"),
            "k1:c2hvcnQ=".to_owned(),
            "k1:not base64!".to_owned(),
            format!("1k:{a}"),
            a.to_owned(),
            format!("k1:{a},"),
        ] {
            let e = config(&[("TOKEN_SIGNING_KEYS", &bad)]).unwrap_err();
            assert_eq!(e.variable, "TOKEN_SIGNING_KEYS", "{bad}");
            assert!(!e.to_string().contains(a), "{e}");
        }
    }

    #[test]
    fn logs_are_text_on_a_terminal_and_json_elsewhere_unless_chosen() {
        assert_eq!(LogFormat::for_output(true), LogFormat::Pretty);
        assert_eq!(LogFormat::for_output(false), LogFormat::Json);
        assert_eq!(
            config(&[("LOG_FORMAT", "pretty")]).unwrap().log_format,
            LogFormat::Pretty
        );
    }

    #[test]
    fn urls_are_never_echoed() {
        let e = config(&[("DATABASE_URL", "mysql://user:hunter2@db")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let c = config(&[("DATABASE_URL", "postgres://user:hunter2@db/x")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn empty_means_unset() {
        let c = config(&[("DATABASE_URL", ""), ("PORT", " ")]).unwrap();
        assert!(c.database_url.is_none());
        assert_eq!(c.port, 8080);
    }
}
