//! The parser against every step, block and limit, with the paths of its problems.

use super::*;
use serde_json::json;

fn paths(v: Value) -> Vec<String> {
    let mut p = Problems::default();
    parse(&v, "payload.steps", &Limits::default(), &mut p);
    p.into_vec().into_iter().map(|f| f.path).collect()
}

/// The limits are the ones given (from `[browser]`), not a process-wide setting.
#[test]
fn the_limits_given_are_the_limits_kept() {
    let nested = json!([{"if": {"exists": "#a", "then": [
        {"if": {"exists": "#b", "then": [{"click": {"selector": "#c"}}]}}]}}]);
    let problems = |limits: Limits| {
        let mut p = Problems::default();
        parse(&nested, "steps", &limits, &mut p);
        p.into_vec()
    };
    assert!(problems(Limits::new(3, 500)).is_empty());
    let deep = problems(Limits::new(2, 500));
    assert_eq!(deep.len(), 1, "{deep:?}");
    assert!(deep[0].message.contains("max_script_depth"), "{deep:?}");
    let many = problems(Limits::new(3, 2));
    assert!(
        many.iter().any(|e| e.message.contains("at most 2 steps")),
        "{many:?}"
    );
}

#[test]
fn parses_every_step_and_reports_indexes() {
    let mut p = Problems::default();
    let steps = parse(
        &json!([
            {"goto": {"url": "https://example.org/", "wait_until": "networkidle", "timeout": "20s"}},
            {"wait_for": {"selector": "#x", "state": "hidden"}},
            {"click": {"selector": "#go"}},
            {"type": {"selector": "#pw", "text": {"secret": "SITE_PASSWORD"}, "delay_ms": 50, "clear": true}},
            {"press": {"key": "Enter"}},
            {"select": {"selector": "#s", "value": "b"}},
            {"extract": {"selector": "li", "all": true, "into": "items"}},
            {"assert_text": {"selector": "h1", "contains": "Welcome"}},
            {"screenshot": {"full_page": true}},
            {"sleep": {"ms": 250}},
        ]),
        "payload.steps",
        &Limits::default(),
        &mut p,
    );
    assert!(p.is_empty(), "{:?}", p.as_slice());
    assert_eq!(steps.len(), 10);
    assert_eq!(secrets(&steps), ["SITE_PASSWORD"]);
    assert!(matches!(
        steps[0],
        Step::Goto {
            wait_until: WaitUntil::NetworkIdle,
            ..
        }
    ));
    assert_eq!(
        paths(json!([
            {"goto": {"url": "ftp://x"}},
            {"sleep": {"ms": 60000}},
            {"fly": {}},
            {"click": {}},
            {"type": {"selector": "#a", "text": {"secret": "lower"}}},
            {"wait_for": {"selector": "#a", "state": "gone"}},
            {"click": {"selector": "#a"}, "extra": 1},
        ])),
        [
            "payload.steps.0.goto.url",
            "payload.steps.1.sleep.ms",
            "payload.steps.2.fly",
            "payload.steps.3.click.selector",
            "payload.steps.4.type.text.secret",
            "payload.steps.5.wait_for.state",
            "payload.steps.6",
        ]
    );
}

#[test]
fn blocks_nest_with_full_paths_and_templates_are_checked_at_parse_time() {
    let mut p = Problems::default();
    let steps = parse(
        &json!([
            {"goto": {"url": "{{ job.metadata.site }}/birthdays"}},
            {"for_each": {"selector": ".contact", "as": "contact", "max": 5, "on_error": "continue", "steps": [
                {"once": {"key": "birthday:{{ contact.attr.data-id }}:{{ today | truncate(4) }}", "steps": [
                    {"consume": {"quota": "messages", "on_exhausted": "defer"}},
                    {"click": {"selector": ":scope .message"}},
                    {"type": {"selector": "#text", "text": "Happy birthday, {{ contact.text | first_word }}!"}},
                ]}},
                {"if": {"text_contains": {"selector": ":scope .status", "text": "new"},
                        "then": [{"notify": {"subject": "{{ contact.text }} is new"}}]}},
            ]}},
        ]),
        "payload.steps",
        &Limits::default(),
        &mut p,
    );
    assert!(p.is_empty(), "{:?}", p.as_slice());
    assert_eq!(
        quotas(&steps, "payload.steps"),
        [(
            "payload.steps.1.for_each.steps.0.once.steps.0.consume.quota".to_string(),
            "messages".to_string()
        )]
    );
    assert_eq!(
        paths(json!([
            {"for_each": {"selector": ".c", "steps": [
                {"click": {"selector": "{{ item.text | shout }}"}},
                {"click": {"selector": "{{ contact.text }}"}},
                {"if": {"exists": "#a", "visible": "#b", "then": [{"click": {"selector": "#x"}}]}},
                {"if": {"equals": {"value": "{{ vars.x }}"}, "then": [{"click": {"selector": "#x"}}]}},
                {"once": {"key": "k", "steps": []}},
            ]}},
            {"click": {"selector": "{{ item.text }}"}},
            {"for_each": {"selector": ".c", "as": "vars", "max": 0, "on_error": "skip", "steps": [{"click": {"selector": "#a"}}]}},
            {"consume": {"quota": "q", "on_exhausted": "later"}},
            {"goto": {"url": "{{ job.name"}},
        ])),
        [
            "payload.steps.0.for_each.steps.0.click.selector",
            "payload.steps.0.for_each.steps.1.click.selector",
            "payload.steps.0.for_each.steps.2.if",
            "payload.steps.0.for_each.steps.3.if.equals.to",
            "payload.steps.0.for_each.steps.4.once.steps",
            "payload.steps.1.click.selector",
            "payload.steps.2.for_each.as",
            "payload.steps.2.for_each.max",
            "payload.steps.2.for_each.on_error",
            "payload.steps.3.consume.on_exhausted",
            "payload.steps.4.goto.url",
        ]
    );
}

#[test]
fn depth_and_size_are_limited() {
    let mut v = json!([{"click": {"selector": "#a"}}]);
    for _ in 0..4 {
        v = json!([{"once": {"key": "k", "steps": v}}]);
    }
    // Five lists deep: the innermost is one too many.
    assert_eq!(
        paths(v),
        ["payload.steps.0.once.steps.0.once.steps.0.once.steps.0.once.steps"]
    );
    let many: Vec<Value> = (0..501)
        .map(|_| json!({"click": {"selector": "#a"}}))
        .collect();
    assert_eq!(paths(Value::Array(many)), ["payload.steps"]);
}
