//! The subset comparison of tests/README.md.

use serde_json::Value;

/// Whether `actual` matches `expected` under the subset comparison.
pub fn matches(expected: &Value, actual: &Value) -> bool {
    mismatch(expected, actual, "$").is_none()
}

/// [`mismatch`] from the root, as a `Result`.
pub fn compare(expected: &Value, actual: &Value) -> Result<(), String> {
    mismatch(expected, actual, "$").map_or(Ok(()), Err)
}

/// Where `actual` differs from the expectation (`path` names the root), or
/// `None` when it matches: objects match when every expected key matches (an
/// expected `null` also matches an absent key), arrays element-wise with
/// equal lengths, the string `"$present"` anything but `null`, and scalars by
/// equality (numbers by value).
pub fn mismatch(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    let differ =
        |differs: bool| differs.then(|| format!("at {path}: expected {expected}, got {actual}"));
    match (expected, actual) {
        (Value::String(marker), _) if marker == "$present" => differ(actual.is_null()),
        (Value::Object(wanted), Value::Object(found)) => wanted.iter().find_map(|(key, value)| {
            let inner = format!("{path}.{key}");
            match found.get(key) {
                Some(item) => mismatch(value, item, &inner),
                None if value.is_null() => None,
                None => Some(format!("at {inner}: expected {value}, but it is absent")),
            }
        }),
        (Value::Array(wanted), Value::Array(found)) => {
            if wanted.len() != found.len() {
                return Some(format!(
                    "at {path}: expected {} items, got {}: {actual}",
                    wanted.len(),
                    found.len()
                ));
            }
            wanted
                .iter()
                .zip(found)
                .enumerate()
                .find_map(|(i, (w, f))| mismatch(w, f, &format!("{path}[{i}]")))
        }
        (Value::Number(a), Value::Number(b)) => differ(a.as_f64() != b.as_f64()),
        _ => differ(expected != actual),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_subset_comparison_means_what_the_readme_says() {
        let actual = json!({ "a": 1, "b": [1, { "c": 2, "d": 3 }], "e": null, "s": "x" });
        assert_eq!(mismatch(&json!({ "a": 1 }), &actual, "$"), None);
        assert_eq!(
            mismatch(&json!({ "b": [1, { "c": 2 }] }), &actual, "$"),
            None
        );
        assert_eq!(
            mismatch(&json!({ "e": null, "zz": null }), &actual, "$"),
            None
        );
        assert_eq!(mismatch(&json!({ "s": "$present" }), &actual, "$"), None);
        assert!(matches(&json!({ "a": 1.0 }), &actual));
        assert!(mismatch(&json!({ "b": [1] }), &actual, "$").is_some());
        assert!(mismatch(&json!({ "a": 2 }), &actual, "$").is_some());
        assert!(mismatch(&json!({ "zz": "$present" }), &actual, "$").is_some());
        assert!(mismatch(&json!({ "a": null }), &actual, "$").is_some());
        assert!(compare(&json!({ "e": "$present" }), &actual).is_err());
    }
}
