//! Request extractors: bearer authentication, strict JSON bodies, strict query strings, path ids
//! and opaque cursors. Every failure is an [`ApiError`], so it answers problem+json.

use crate::ApiState;
use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest};
use application::{Actor, ShopError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::product::FieldError;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub(crate) fn state(req: &HttpRequest) -> Result<web::Data<ApiState>, ApiError> {
    req.app_data::<web::Data<ApiState>>()
        .cloned()
        .ok_or_else(|| ShopError::Internal("ApiState is not registered".into()).into())
}

/// The bearer token of the request: `Ok(None)` when there is no `Authorization` header, an
/// error when there is one that is not a well-formed bearer credential, or more than one
/// (which one counts would be a guess, and a proxy and the service might guess differently).
fn bearer_token(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::unauthenticated());
    }
    let value = value.to_str().map_err(|_| ApiError::unauthenticated())?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(ApiError::unauthenticated)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthenticated());
    }
    Ok(Some(token.to_owned()))
}

/// Authenticates, then takes one request from the caller's budget (429 before any use case
/// runs).
async fn resolve(state: web::Data<ApiState>, token: String) -> Result<Actor, ApiError> {
    let actor = state.shop.authenticate(&token).await?;
    crate::rate_limit::check_user(&state, actor.user_id).await?;
    Ok(actor)
}

/// A caller with a valid bearer token; anything else answers 401 `UNAUTHENTICATED`.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Actor);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = state(req).and_then(|s| Ok((s, bearer_token(req)?)));
        let req = req.clone();
        Box::pin(async move {
            // Failed authentications count against the client (`rate_limit`).
            crate::rate_limit::guard_authentication(&req, true, async move {
                match found? {
                    (state, Some(token)) => Ok(Self(resolve(state, token).await?)),
                    (_, None) => Err(ApiError::unauthenticated()),
                }
            })
            .await
        })
    }
}

/// An optional caller: anonymous requests pass with `None`, but a token that is present and
/// invalid still answers 401 (a client that thinks it is signed in must learn it is not).
#[derive(Debug, Clone, Copy)]
pub struct MaybeAuthenticated(pub Option<Actor>);

impl FromRequest for MaybeAuthenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = state(req).and_then(|s| Ok((s, bearer_token(req)?)));
        let req = req.clone();
        Box::pin(async move {
            // Failed authentications count against the client (`rate_limit`).
            crate::rate_limit::guard_authentication(&req, false, async move {
                match found? {
                    (state, Some(token)) => Ok(Self(Some(resolve(state, token).await?))),
                    (_, None) => Ok(Self(None)),
                }
            })
            .await
        })
    }
}

/// A JSON request body parsed strictly (types, unknown fields, size, content type, exactly one
/// object), together with its raw bytes (the idempotency fingerprint is taken over exactly
/// what the client sent). The body must arrive within [`BodyTimeout`]; a client that stalls in
/// it is answered 408 and its connection closed, so stalled clients cannot pile up.
///
/// Extraction itself never fails: actix polls a handler's extractors concurrently, and a bad
/// body must not win the race against a missing token. The handler calls
/// [`JsonBody::into_parts`] once the caller is authenticated, so 401 always comes before 400.
#[derive(Debug)]
pub struct JsonBody<T>(Result<(T, Bytes), ApiError>);

impl<T> JsonBody<T> {
    /// The parsed value and the raw bytes, or the 400 the body deserves.
    pub fn into_parts(self) -> Result<(T, Bytes), ApiError> {
        self.0
    }
}

fn is_json_content_type(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json_content_type(req);
        let timeout = req.app_data::<BodyTimeout>().copied().unwrap_or_default().0;
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            // The body is read even when the content type is wrong, so that the connection
            // stays usable for the next request.
            let Ok(raw) = actix_web::rt::time::timeout(timeout, bytes).await else {
                metrics::counter!("http_body_timeouts_total").increment(1);
                return Ok(Self(Err(ApiError::RequestTimeout)));
            };
            let parsed = if json {
                raw.map_err(|e| {
                    if e.as_response_error().status_code().as_u16() == 413 {
                        ApiError::field("body", format!("must be at most {MAX_BODY_BYTES} bytes"))
                    } else {
                        ApiError::field("body", "could not be read")
                    }
                })
                .and_then(|raw| Ok((parse_json(&raw)?, raw)))
            } else {
                Err(ApiError::field("Content-Type", "must be application/json"))
            };
            Ok(Self(parsed))
        })
    }
}

/// How long a request body may take to arrive once its head has (`BODY_TIMEOUT_MS`). Set as
/// app data; absent, [`BodyTimeout::default`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

impl BodyTimeout {
    pub const DEFAULT: Duration = Duration::from_secs(5);
}

impl Default for BodyTimeout {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// Parses `raw` into `T`, naming the offending field on failure.
///
/// Accepted bodies are exactly one JSON object with nothing but JSON whitespace after it:
/// every request body of the API is one, and content after it (a second object, garbage) would
/// otherwise be ignored silently while the idempotency fingerprint still covers it. Nested
/// request objects refuse the array form themselves (see [`ObjectOnly`]).
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    // An empty body falls through to serde's "EOF" error; anything else must open an object
    // (serde's derived structs also accept an array of the field values; the API does not).
    match raw.iter().find(|b| !is_json_whitespace(**b)) {
        None | Some(b'{') => {}
        Some(_) => return Err(ApiError::field("body", "must be a JSON object")),
    }
    // JSON Schema (and so the OpenAPI document) counts `285.0` or `2.85e2` as an integer: a
    // number is an integer when its value has no fraction, however it is written. A body
    // refused for such a number is read again with those numbers rewritten as integers (same
    // text otherwise, so every other rule, duplicate keys included, still applies); a real
    // fraction (`285.5`) or a number beyond 2^53 (where a float is no longer exact) stays as
    // written and is refused. Only bodies the first read refused take this path.
    match read_one_value(raw) {
        Err(Unread::Json(e)) if is_integral_float_refused(e.inner()) => {
            Ok(read_one_value(&integral_floats_as_integers(raw))?)
        }
        read => Ok(read?),
    }
}

/// Why [`read_one_value`] read nothing.
enum Unread {
    /// serde refused the value, at this path.
    Json(serde_path_to_error::Error<serde_json::Error>),
    /// Something other than whitespace follows the value.
    Trailing,
}

impl From<Unread> for ApiError {
    fn from(unread: Unread) -> Self {
        match unread {
            Unread::Json(e) => {
                let path = e.path().to_string();
                json_error(&path, &e.into_inner())
            }
            Unread::Trailing => ApiError::field(
                "body",
                "must be exactly one JSON object, with nothing after it",
            ),
        }
    }
}

/// One JSON value of type `T` and nothing after it but whitespace.
fn read_one_value<T: DeserializeOwned>(raw: &[u8]) -> Result<T, Unread> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut de).map_err(Unread::Json)?;
    de.end().map_err(|_| Unread::Trailing)?;
    Ok(value)
}

/// serde refused a number written with a fraction or exponent where an integer belongs.
fn is_integral_float_refused(error: &serde_json::Error) -> bool {
    error.is_data()
        && error
            .to_string()
            .starts_with("invalid type: floating point")
}

/// The integer a JSON number denotes: an `i64`, or a float without fraction within 2^53 (where
/// floats are exact). `None` for anything else.
pub(crate) fn integral(value: &serde_json::Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_f64().and_then(exact_integer))
}

/// The integer `f` is, when it has no fraction and lies within 2^53 (where floats are exact).
fn exact_integer(f: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    // In range and without a fraction: the conversion is exact.
    #[allow(clippy::cast_possible_truncation)]
    (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

/// `raw` with every number token outside strings that is written with a fraction or exponent
/// but whose value is an exactly representable integer written as that integer.
fn integral_floats_as_integers(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let (mut i, mut in_string, mut escaped) = (0, false, false);
    while i < raw.len() {
        let b = raw[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            out.push(b);
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
        } else if b == b'-' || b.is_ascii_digit() {
            let end = raw[i..]
                .iter()
                .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .map_or(raw.len(), |n| i + n);
            let token = &raw[i..end];
            let integral = std::str::from_utf8(token)
                .ok()
                .filter(|t| t.contains(['.', 'e', 'E']))
                .and_then(|t| t.parse::<f64>().ok())
                .and_then(exact_integer);
            match integral {
                Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
                None => out.extend_from_slice(token),
            }
            i = end;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// The whitespace JSON allows between tokens (RFC 8259): space, tab, line feed, return.
fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A deserializer on which a struct can only be read from a JSON object.
///
/// serde's derived `Deserialize` for a struct calls `deserialize_struct`, and serde_json then
/// accepts an array of the field values as well as an object. Request DTOs derive their
/// `Deserialize` with `#[serde(remote = "Self")]` and implement the trait through this
/// wrapper (see `object_only!` in `dto`), which turns every request into `deserialize_map`:
/// an array answers "invalid type: sequence, expected struct ...", at any nesting level.
pub(crate) struct ObjectOnly<D>(pub D);

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

fn json_error(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = error.to_string();
    // serde_json appends " at line X column Y"; the client has the field name instead.
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    };
    let prefix = if path == "." || path.is_empty() {
        String::new()
    } else {
        path.to_owned()
    };
    let field = match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => "body".to_owned(),
        Category::Data => {
            // Missing and duplicate fields are reported on their parent; name the field
            // itself. (An unknown field's path already ends with its name.)
            match backticked(&message) {
                Some(name)
                    if message.starts_with("missing field")
                        || message.starts_with("duplicate field") =>
                {
                    if prefix.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{prefix}.{name}")
                    }
                }
                _ if prefix.is_empty() => "body".to_owned(),
                _ => prefix,
            }
        }
    };
    let message = match error.classify() {
        Category::Eof if message.contains("EOF while parsing a value") => {
            "must be a JSON document".to_owned()
        }
        _ => message,
    };
    ApiError::field(field, message)
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// A query string read strictly: each method consumes one parameter and records an error for a
/// bad value; [`QueryParams::finish`] refuses unknown or repeated parameters and reports every
/// error at once.
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl QueryParams {
    pub fn new(req: &HttpRequest) -> Self {
        let mut errors = Vec::new();
        let pairs = match web::Query::<Vec<(String, String)>>::from_query(req.query_string()) {
            Ok(q) => q.into_inner(),
            Err(_) => {
                errors.push(FieldError::new("query", "is not a valid query string"));
                Vec::new()
            }
        };
        let mut seen = std::collections::HashSet::new();
        for (name, _) in &pairs {
            if !seen.insert(name.clone()) {
                errors.push(FieldError::new(name.clone(), "must not be repeated"));
            }
        }
        Self { pairs, errors }
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.pairs.iter().position(|(n, _)| n == name)?;
        let (_, value) = self.pairs.remove(at);
        // A repeated parameter was already reported; drop the other copies.
        self.pairs.retain(|(n, _)| n != name);
        Some(value)
    }

    /// An integer in `min..=max`, `default` when absent.
    pub fn int(&mut self, name: &str, min: u32, max: u32, default: u32) -> u32 {
        match self.take(name) {
            None => default,
            Some(raw) => match raw.parse::<u32>() {
                Ok(v) if (min..=max).contains(&v) => v,
                _ => {
                    self.errors.push(FieldError::new(
                        name,
                        format!("must be an integer between {min} and {max}"),
                    ));
                    default
                }
            },
        }
    }

    /// `limit` (1..=100, default 20) and the opaque `cursor`.
    pub fn cursor_page(&mut self) -> domain::page::CursorPage {
        use domain::page::CursorPage;
        let limit = self.int("limit", 1, CursorPage::MAX_LIMIT, CursorPage::DEFAULT_LIMIT);
        let before = self
            .take("cursor")
            .and_then(|raw| match decode_cursor(&raw) {
                Some(id) => Some(id),
                None => {
                    self.errors
                        .push(FieldError::new("cursor", "is not a cursor from this API"));
                    None
                }
            });
        CursorPage { before, limit }
    }

    /// One of the names `parse` accepts; `allowed` is shown in the error.
    pub fn one_of<T>(
        &mut self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Option<T> {
        let raw = self.take(name)?;
        let parsed = parse(&raw);
        if parsed.is_none() {
            self.errors
                .push(FieldError::new(name, format!("must be one of {allowed}")));
        }
        parsed
    }

    pub fn finish(mut self) -> Result<(), ApiError> {
        for (name, _) in std::mem::take(&mut self.pairs) {
            if !self.errors.iter().any(|e| e.field == name) {
                self.errors
                    .push(FieldError::new(name, "is not a known parameter"));
            }
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ShopError::Validation(self.errors).into())
        }
    }
}

/// The `{id}` segment of the path as a positive integer; anything else is 400 (field `id`).
pub fn path_id<T: From<i64>>(req: &HttpRequest) -> Result<T, ApiError> {
    let raw = req.match_info().get("id").unwrap_or_default();
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(T::from(id)),
        _ => Err(ApiError::field("id", "must be a positive integer")),
    }
}

/// Cursors are opaque to clients: the URL-safe base64 of the last id of the previous page.
pub fn encode_cursor(id: Option<i64>) -> Option<String> {
    id.map(|id| URL_SAFE_NO_PAD.encode(id.to_string()))
}

pub fn decode_cursor(raw: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    // Only the canonical form is accepted, so that every cursor has exactly one spelling.
    let id: i64 = text.parse().ok()?;
    (id > 0 && id.to_string() == text).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        product_id: i64,
        quantity: i64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Order {
        items: Vec<Line>,
        coupon_issue_id: Option<i64>,
    }

    fn field_of(raw: &str) -> (String, String) {
        match parse_json::<Order>(raw.as_bytes()).unwrap_err() {
            ApiError::Shop(ShopError::Validation(f)) => (f[0].field.clone(), f[0].message.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn integers_written_as_floats_are_integers() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Line {
            product_id: i64,
            quantity: u32,
            note: String,
        }
        let line: Line =
            parse_json(br#"{"productId": 2.85e2, "quantity": 3.0, "note": "1.0 \" 2.0"}"#).unwrap();
        assert_eq!(
            line,
            Line {
                product_id: 285,
                quantity: 3,
                note: r#"1.0 " 2.0"#.into()
            }
        );
        assert!(parse_json::<Line>(br#"{"productId": -7.0, "quantity": 1, "note": ""}"#).is_ok());
        for refused in [
            r#"{"productId": 285.5, "quantity": 1, "note": ""}"#,
            r#"{"productId": 1e300, "quantity": 1, "note": ""}"#,
            r#"{"productId": 9007199254740994.0, "quantity": 1, "note": ""}"#,
            r#"{"productId": 1.0, "quantity": -1.0, "note": ""}"#,
            r#"{"productId": 1.0, "quantity": 1, "note": ""} {}"#,
        ] {
            assert!(parse_json::<Line>(refused.as_bytes()).is_err(), "{refused}");
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"items":[{"productId":1,"quantity":"2"}]}"#).0,
            "items[0].quantity"
        );
        assert_eq!(
            field_of(r#"{"items":[{"productId":1,"quantity":1e30}]}"#).0,
            "items[0].quantity"
        );
        assert_eq!(
            field_of(r#"{"items":[{"productId":9223372036854775808,"quantity":1}]}"#).0,
            "items[0].productId"
        );
        assert_eq!(
            field_of(r#"{"items":[{"productId":1}]}"#).0,
            "items[0].quantity"
        );
        assert_eq!(field_of(r#"{"items":[],"admin":true}"#).0, "admin");
        assert_eq!(field_of(r#"{"couponIssueId":1}"#).0, "items");
        assert_eq!(field_of(r#"{"items":[}"#).0, "body");
        assert_eq!(field_of("").0, "body");
        assert_eq!(field_of("[]").0, "body");
        assert_eq!(
            field_of(r#"  [[{"productId":1,"quantity":1}], null]"#).0,
            "body"
        );
        assert_eq!(field_of(r#"{"items":[],"items":[]}"#).0, "items");
        // An integral float takes the second read; a duplicate key is still refused there.
        assert_eq!(
            field_of(r#"{"items":[{"productId":1.0,"productId":2,"quantity":1}]}"#).0,
            "items[0].productId"
        );
        assert_eq!(
            field_of(r#"{"items":[{"productId":1,"quantity":1.5}]}"#).0,
            "items[0].quantity"
        );
        assert_eq!(
            field_of(r#"{"items":[{"productId":1,"productId":2,"quantity":1}]}"#).0,
            "items[0].productId"
        );
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(Some(42)).unwrap();
        assert_eq!(decode_cursor(&c), Some(42));
        assert_eq!(encode_cursor(None), None);
        for bad in [
            "",
            "!!",
            "abc",
            &URL_SAFE_NO_PAD.encode("-1"),
            &URL_SAFE_NO_PAD.encode("007"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    /// Generated hostile bodies: arbitrary bytes, arbitrary JSON documents, and JSON documents
    /// with something after them. Whatever comes in, parsing answers (never panics), and what
    /// it accepts is exactly one JSON object with nothing but whitespace around it, objects
    /// (never arrays) at every level where a request struct is expected.
    mod properties {
        use super::super::*;
        use crate::dto::{CreateCouponRequest, PlaceOrderRequest};
        use proptest::prelude::*;
        use serde_json::Value;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "\\PC{0,12}".prop_map(Value::from),
                prop::sample::select(vec![
                    "productId",
                    "quantity",
                    "items",
                    "couponIssueId",
                    "name",
                    "startsAt",
                    "9999-12-31T23:59:59-23:59",
                    "2026-11-21T09:30:00Z",
                    "\u{0}",
                ])
                .prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec(
                        (
                            prop::sample::select(vec![
                                "items",
                                "productId",
                                "quantity",
                                "couponIssueId",
                                "name",
                                "discountType",
                                "amount",
                                "totalQuantity",
                                "startsAt",
                                "expiresAt",
                                "x",
                            ]),
                            inner,
                        ),
                        0..6,
                    )
                    .prop_map(|fields| Value::Object(
                        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                    )),
                ]
            })
        }

        /// A JSON document, sometimes followed by junk or another document.
        fn body() -> impl Strategy<Value = Vec<u8>> {
            (
                json_value(),
                prop_oneof![
                    3 => Just(String::new()),
                    1 => "[ \t\r\n]{1,4}",
                    1 => "\\PC{1,6}",
                    1 => json_value().prop_map(|v| v.to_string()),
                ],
            )
                .prop_map(|(value, tail)| format!("{value}{tail}").into_bytes())
        }

        fn only_whitespace_around_one_object(raw: &[u8], accepted: &Value) -> bool {
            let text = std::str::from_utf8(raw).expect("accepted bodies are UTF-8");
            let trimmed = text.trim_matches([' ', '\t', '\r', '\n']);
            accepted.is_object()
                && trimmed.starts_with('{')
                && trimmed.ends_with('}')
                && serde_json::from_slice::<Value>(raw).ok().as_ref() == Some(accepted)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_bytes_never_panic_and_only_one_object_is_accepted(
                raw in prop::collection::vec(any::<u8>(), 0..64),
            ) {
                if let Ok(value) = parse_json::<Value>(&raw) {
                    prop_assert!(only_whitespace_around_one_object(&raw, &value));
                }
            }

            #[test]
            fn json_documents_with_tails_are_accepted_only_when_one_object(raw in body()) {
                if let Ok(value) = parse_json::<Value>(&raw) {
                    prop_assert!(only_whitespace_around_one_object(&raw, &value));
                }
                if parse_json::<PlaceOrderRequest>(&raw).is_ok() {
                    let value: Value = serde_json::from_slice(&raw).unwrap();
                    prop_assert!(value.is_object());
                    let items = value["items"].as_array().expect("items is an array");
                    prop_assert!(items.iter().all(Value::is_object), "{}", value);
                }
                if parse_json::<CreateCouponRequest>(&raw).is_ok() {
                    let value: Value = serde_json::from_slice(&raw).unwrap();
                    prop_assert!(value.is_object());
                }
            }

            #[test]
            fn order_lines_in_array_form_are_refused_at_any_position(
                lines in prop::collection::vec((1i64..1_000, 1i64..=1_000, any::<bool>()), 1..6),
            ) {
                let items: Vec<Value> = lines
                    .iter()
                    .map(|&(p, q, as_array)| {
                        if as_array {
                            serde_json::json!([p, q])
                        } else {
                            serde_json::json!({"productId": p, "quantity": q})
                        }
                    })
                    .collect();
                let raw = serde_json::json!({ "items": items }).to_string();
                let parsed = parse_json::<PlaceOrderRequest>(raw.as_bytes());
                match lines.iter().position(|l| l.2) {
                    None => prop_assert!(parsed.is_ok()),
                    Some(first) => match parsed {
                        Err(ApiError::Shop(ShopError::Validation(fields))) => {
                            prop_assert_eq!(&fields[0].field, &format!("items[{first}]"));
                        }
                        other => prop_assert!(false, "accepted {}: {:?}", raw, other),
                    },
                }
            }
        }
    }
}
