//! A compact diff of two JSON values, for the audit log: the paths that differ, each with
//! its value before and after.

use serde_json::{Map, Value};

/// How deep objects are compared before a whole sub-object counts as one changed value.
const MAX_DEPTH: usize = 4;

/// `{"a.b": {"from": …, "to": …}, …}` for every path where `before` and `after` differ
/// (a missing side is `null`); keys in `ignore` (top level) are left out. Arrays compare as
/// whole values.
pub fn changes(before: &Value, after: &Value, ignore: &[&str]) -> Value {
    let mut out = Map::new();
    walk(before, after, String::new(), 0, ignore, &mut out);
    Value::Object(out)
}

fn walk(
    before: &Value,
    after: &Value,
    path: String,
    depth: usize,
    ignore: &[&str],
    out: &mut Map<String, Value>,
) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) if depth < MAX_DEPTH => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if depth == 0 && ignore.contains(&k.as_str()) {
                    continue;
                }
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(
                    b.get(k).unwrap_or(&Value::Null),
                    a.get(k).unwrap_or(&Value::Null),
                    sub,
                    depth + 1,
                    ignore,
                    out,
                );
            }
        }
        (b, a) if b != a => {
            let mut change = Map::new();
            change.insert("from".into(), b.clone());
            change.insert("to".into(), a.clone());
            out.insert(path, Value::Object(change));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_changed_paths_with_both_sides() {
        let before = json!({"name": "a", "policy": {"max_retries": 3, "timeout": "5m"},
                            "tags": ["x"], "updated_at": 1});
        let after = json!({"name": "a", "policy": {"max_retries": 5, "timeout": "5m"},
                           "tags": ["x", "y"], "updated_at": 2, "paused": true});
        let d = changes(&before, &after, &["updated_at"]);
        assert_eq!(
            d,
            json!({
                "policy.max_retries": {"from": 3, "to": 5},
                "tags": {"from": ["x"], "to": ["x", "y"]},
                "paused": {"from": null, "to": true},
            })
        );
        assert_eq!(changes(&before, &before, &[]), json!({}));
    }
}
