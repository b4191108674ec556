//! What crosses the boundary: JSON data in, JSON data out, and every failure as
//! a `SignoffError` with the core's stable code.
//!
//! Inputs are turned into JSON text by `glue.js` (which refuses values that
//! are not plain JSON data, and texts over 1 MiB) and parsed with `serde_json`,
//! so the core sees exactly what an HTTP body would give it. Outputs go the
//! other way: `serde_json` text, then `JSON.parse`.

use serde::Serialize;
use serde_json::Value;
use signoff_core::validation::ObjectReader;
use signoff_core::{Error, ErrorCode, IfMatch, Principal, Violation, ViolationCode};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/js/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = makeError)]
    fn make_error(code: &str, message: &str, details: JsValue) -> JsValue;

    /// The JSON text as UTF-8 bytes (a `Uint8Array`), `undefined`, or an
    /// array of problems.
    #[wasm_bindgen(js_name = toJsonText)]
    fn to_json_text(value: &JsValue, prefix: &str, what: &str) -> JsValue;
}

/// The most characters of an id argument (UTF-16 units) read at all.
const MAX_ID_UNITS: u32 = 4096;

/// A JS time (epoch milliseconds, as `Date.now()` gives it) as whole
/// milliseconds, or `None` when it is not a finite time a `Date` can hold
/// (at most 8.64e15 ms either side of the epoch).
pub fn epoch_millis(value: f64) -> Option<i64> {
    (value.is_finite() && value.abs() <= 8.64e15).then(|| value.floor() as i64)
}

/// A thrown `SignoffError` with `code`, `message` and `details`.
pub fn js_error(code: ErrorCode, message: &str, details: Option<&Value>) -> JsValue {
    let details = details
        .and_then(|details| to_js(details).ok())
        .unwrap_or(JsValue::UNDEFINED);
    make_error(code.as_str(), message, details)
}

/// The core's error as a `SignoffError`.
pub fn error(error: &Error) -> JsValue {
    if let Error::InvalidRequest { details, .. } = error {
        // Items keep their `{ path, code, message }` order.
        let details = to_js(details).unwrap_or(JsValue::UNDEFINED);
        return make_error(
            ErrorCode::InvalidRequest.as_str(),
            &error.to_string(),
            details,
        );
    }
    let details = match error {
        Error::RateLimited {
            retry_after_seconds,
        } => to_js(&RetryAfter {
            retry_after_seconds: *retry_after_seconds,
        })
        .unwrap_or(JsValue::UNDEFINED),
        _ => JsValue::UNDEFINED,
    };
    make_error(error.code().as_str(), &error.to_string(), details)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RetryAfter {
    retry_after_seconds: u64,
}

/// An `invalid_request` listing `details`.
pub fn invalid(message: &str, details: Vec<Violation>) -> JsValue {
    error(&Error::invalid(message, details))
}

/// `value` as a JS value, through JSON text.
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    // `to_string` is the core's `to_vec` (one serializer per type) without a
    // second UTF-8 check.
    let text = serde_json::to_string(value).map_err(|failure| internal(&failure.to_string()))?;
    js_sys::JSON::parse(&text).map_err(|_| internal("could not parse an answer"))
}

/// JSON the core produced, as a JS value.
pub fn json_bytes_to_js(bytes: &[u8]) -> Result<JsValue, JsValue> {
    let text = std::str::from_utf8(bytes).map_err(|_| internal("an answer is not UTF-8"))?;
    js_sys::JSON::parse(text).map_err(|_| internal("could not parse an answer"))
}

fn internal(message: &str) -> JsValue {
    js_error(ErrorCode::Internal, message, None)
}

/// `value` as JSON data, or every reason it is not (paths start at `prefix`).
/// `undefined` and `null` both give `Value::Null`.
pub fn json_or_problems(
    value: &JsValue,
    prefix: &str,
    what: &str,
) -> Result<Value, Vec<Violation>> {
    let converted = to_json_text(value, prefix, what);
    if let Some(bytes) = converted.dyn_ref::<js_sys::Uint8Array>() {
        // `from_slice`, as the core reads stored values: one parser in the module.
        return serde_json::from_slice(&bytes.to_vec()).map_err(|failure| {
            vec![Violation::new(
                prefix,
                ViolationCode::InvalidType,
                format!("is not JSON data: {failure}"),
            )]
        });
    }
    if converted.is_undefined() {
        return Ok(Value::Null);
    }
    // The problems `glue.js` found: `{ path, code, message }` items.
    let text = |item: &JsValue, name: &str| {
        js_sys::Reflect::get(item, &JsValue::from_str(name))
            .ok()
            .and_then(|value| value.as_string())
            .unwrap_or_default()
    };
    let problems: Vec<Violation> = js_sys::Array::from(&converted)
        .iter()
        .map(|item| {
            let code = match text(&item, "code").as_str() {
                "too_large" => ViolationCode::TooLarge,
                _ => ViolationCode::InvalidType,
            };
            Violation::new(text(&item, "path"), code, text(&item, "message"))
        })
        .collect();
    if problems.is_empty() {
        return Err(vec![Violation::new(
            prefix,
            ViolationCode::InvalidType,
            "is not JSON data",
        )]);
    }
    Err(problems)
}

/// `value` as JSON data, or an `invalid_request`.
pub fn json(value: &JsValue, prefix: &str, what: &str) -> Result<Value, JsValue> {
    json_or_problems(value, prefix, what)
        .map_err(|problems| invalid(&format!("the {what} is not JSON data"), problems))
}

/// An optional options object: `undefined` and `null` mean `{}`.
pub fn options(value: Option<JsValue>, what: &str) -> Result<Option<Value>, JsValue> {
    match value {
        None => Ok(None),
        Some(value) => json(&value, "", what).map(Some),
    }
}

/// A request id: a string argument.
pub fn id(value: &JsValue) -> Result<String, JsValue> {
    let too_long = value
        .dyn_ref::<js_sys::JsString>()
        .is_some_and(|text| text.length() > MAX_ID_UNITS);
    match value.as_string() {
        Some(_) if too_long => Err(invalid(
            "the id is invalid",
            vec![Violation::new(
                "id",
                ViolationCode::TooLong,
                format!("must be at most {MAX_ID_UNITS} characters"),
            )],
        )),
        Some(id) => Ok(id),
        None => Err(invalid(
            "the id is invalid",
            vec![Violation::new(
                "id",
                ViolationCode::InvalidType,
                "must be a string",
            )],
        )),
    }
}

/// A principal `{ id, roles }`, validated by the core (`Principal::parse`).
pub fn principal(value: &JsValue) -> Result<Principal, JsValue> {
    let json = json(value, "principal", "principal")?;
    Principal::parse(&json, "principal").map_err(|items| invalid("the principal is invalid", items))
}

/// The options of `replaceRules`: `{ ifMatch? }`, a digest or `*`.
pub fn if_match(options: Option<&Value>) -> Result<Option<IfMatch>, JsValue> {
    let Some(options) = options else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let mut found = None;
    if let Some(mut reader) = ObjectReader::new("", options, &mut out) {
        found = reader
            .optional_str("ifMatch", &mut out)
            .map(|value| IfMatch::parse([value]));
        reader.finish(&mut out);
    }
    if out.is_empty() {
        Ok(found)
    } else {
        Err(invalid("the replaceRules options are invalid", out))
    }
}

/// The options of `create`: `{ idempotencyKey? }`.
pub fn create_options(value: Option<JsValue>) -> Result<Option<String>, JsValue> {
    let Some(value) = options(value, "create options")? else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut key = None;
    if let Some(mut reader) = ObjectReader::new("", &value, &mut out) {
        key = reader
            .optional_str("idempotencyKey", &mut out)
            .map(str::to_owned);
        reader.finish(&mut out);
    }
    if out.is_empty() {
        Ok(key)
    } else {
        Err(invalid("the create options are invalid", out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_details_have_the_core_s_shape() {
        let error = Error::RateLimited {
            retry_after_seconds: 9,
        };
        let ours = serde_json::to_value(RetryAfter {
            retry_after_seconds: 9,
        })
        .unwrap();
        assert_eq!(Some(ours), error.details());
    }

    /// The codes the web entry throws before the module exists are the
    /// core's: a code is never invented in JavaScript.
    #[test]
    fn the_web_entry_throws_only_the_core_s_codes() {
        let entry = include_str!("../../package/web.index.js");
        let codes: Vec<&str> = entry
            .split("new SignoffError(")
            .skip(1)
            .map(|rest| {
                rest.trim_start()
                    .strip_prefix('"')
                    .and_then(|rest| rest.split('"').next())
                    .expect("a SignoffError built with a literal code")
            })
            .collect();
        assert!(!codes.is_empty());
        for code in codes {
            assert!(ErrorCode::parse(code).is_some(), "{code} is not the core's");
        }
    }
}
