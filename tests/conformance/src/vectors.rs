//! Loading the vector files and expanding their generators.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One file of vectors: its name, its description and its cases (not yet
/// expanded).
#[derive(Debug, Clone)]
pub struct VectorFile {
    /// The file name, such as `lifecycle.json`.
    pub name: String,
    /// What the file covers.
    pub description: String,
    /// The cases, in file order.
    pub cases: Vec<Value>,
}

/// The repository's `tests/vectors` directory.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors")
}

/// Reads every `*.json` file of `directory`, in name order. A file that is
/// not JSON, has no `description` or `cases`, or holds a case without a name
/// or two cases of one name is an error.
pub fn load(directory: &Path) -> Result<Vec<VectorFile>, String> {
    let entries = std::fs::read_dir(directory)
        .map_err(|e| format!("cannot read {}: {e}", directory.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", directory.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|path| load_file(path)).collect()
}

fn load_file(path: &Path) -> Result<VectorFile, String> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let document: Value =
        serde_json::from_str(&text).map_err(|e| format!("{name} is not JSON: {e}"))?;
    let description = document["description"]
        .as_str()
        .ok_or_else(|| format!("{name} has no `description`"))?
        .to_owned();
    let cases = document["cases"]
        .as_array()
        .ok_or_else(|| format!("{name} has no `cases` array"))?
        .clone();
    let mut seen = HashSet::new();
    for (position, case) in cases.iter().enumerate() {
        let case_name = case["name"]
            .as_str()
            .ok_or_else(|| format!("{name}: case {position} has no `name`"))?;
        if !seen.insert(case_name) {
            return Err(format!("{name}: duplicate case `{case_name}`"));
        }
    }
    Ok(VectorFile {
        name,
        description,
        cases,
    })
}

/// Replaces `{ "$repeat": s, "count": n }` by `s` repeated `n` times and
/// `{ "$concat": [parts] }` by the concatenation of its (expanded) parts,
/// depth first (tests/README.md, "Files").
pub fn expand(value: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::Object(object) if object.contains_key("$repeat") => {
            let text = object["$repeat"].as_str().ok_or("$repeat takes a string")?;
            let count = object
                .get("count")
                .and_then(Value::as_u64)
                .and_then(|count| usize::try_from(count).ok())
                .ok_or("$repeat needs a count")?;
            Value::String(text.repeat(count))
        }
        Value::Object(object) if object.contains_key("$concat") => {
            let parts = object["$concat"].as_array().ok_or("$concat takes a list")?;
            let mut joined = String::new();
            for part in parts {
                match expand(part)? {
                    Value::String(text) => joined.push_str(&text),
                    other => return Err(format!("$concat parts must be strings, got {other}")),
                }
            }
            Value::String(joined)
        }
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, item)| Ok((key.clone(), expand(item)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Array(items) => Value::Array(items.iter().map(expand).collect::<Result<_, _>>()?),
        scalar => scalar.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn generators_expand_depth_first() {
        assert_eq!(
            expand(&json!({ "t": { "$concat": [" ", { "$repeat": "ab", "count": 2 }] } })).unwrap(),
            json!({ "t": " abab" })
        );
        assert_eq!(
            expand(&json!([{ "$repeat": "😀", "count": 3 }])).unwrap(),
            json!(["😀😀😀"])
        );
        assert!(expand(&json!({ "$repeat": 1, "count": 2 })).is_err());
        assert!(expand(&json!({ "$concat": ["a", 1] })).is_err());
    }

    #[test]
    fn the_repository_vectors_load() {
        let files = load(&vectors_dir()).unwrap();
        assert!(files.iter().any(|file| file.name == "lifecycle.json"));
    }
}
