//! The URL skeleton: which component each tag stands in, what is refused when the definition is
//! saved, and (property-tested) that no value changes the structure of the rendered URL: host,
//! port, userinfo, path segments, query pairs and fragment stay as the skeleton has them, and the
//! decoded component is the value.

use std::borrow::Cow;
use std::convert::Infallible;

use proptest::prelude::*;
use sealflow_workflow::{validate, UrlPart, UrlRenderError, UrlTemplate};
use serde_json::json;
use url::Url;

/// Values an attacker would try, one per class of trick.
const HOSTILE: [&str; 22] = [
    "/",
    "?",
    "#",
    "&",
    "=",
    "@",
    ":",
    "%2F",
    "%2e%2e",
    "..",
    ".",
    "a b",
    "a+b",
    "évil",
    "\u{FF0E}evil",
    "a\r\nX-Injected: 1",
    "",
    "evil.test/#",
    "evil.test:80@x",
    "\\evil",
    "x&admin=true",
    "https://evil.test/",
];

fn parts(url: &str) -> Vec<(String, UrlPart)> {
    UrlTemplate::parse(url)
        .unwrap()
        .tags()
        .map(|(_, tag, part)| (tag.to_string(), part))
        .collect()
}

/// Renders with every tag's value `value`.
fn render(url: &str, value: &str) -> Result<String, UrlRenderError<Infallible>> {
    let t = UrlTemplate::parse(url).unwrap();
    let mut out = String::new();
    t.render_into(&mut out, 1 << 20, |_| Ok(Cow::Borrowed(value)))?;
    Ok(out)
}

#[test]
fn every_tag_is_given_the_component_it_stands_in() {
    use UrlPart::*;
    let url = "https://{{input.user}}:{{secrets.PASS}}@{{input.sub}}.api.example.com:{{input.port}}\
               /v1/{{input.seg}}/x-{{input.part}}?{{input.name}}={{input.value}}&b=c{{input.more}}\
               #{{input.frag}}";
    assert_eq!(
        parts(url),
        [
            ("input.user".into(), Userinfo),
            ("secrets.PASS".into(), Userinfo),
            ("input.sub".into(), Host),
            ("input.port".into(), Port),
            ("input.seg".into(), Path),
            ("input.part".into(), Path),
            ("input.name".into(), QueryName),
            ("input.value".into(), QueryValue),
            ("input.more".into(), QueryValue),
            ("input.frag".into(), Fragment),
        ]
    );
    assert_eq!(parts("{{secrets.URL}}"), [("secrets.URL".into(), Whole)]);
    assert_eq!(
        parts("{{secrets.BASE}}/v1?q={{input.q}}"),
        [("secrets.BASE".into(), Start), ("input.q".into(), QueryValue)]
    );
    assert_eq!(
        parts("https://{{secrets.HOST}}/x"),
        [("secrets.HOST".into(), Host)]
    );
    assert_eq!(
        parts("https://h.example/?a=1=2{{input.x}}"),
        [("input.x".into(), QueryValue)]
    );
    assert_eq!(
        parts("https://h.example/a?b#c?d={{input.x}}"),
        [("input.x".into(), Fragment)]
    );
}

#[test]
fn ambiguous_or_domain_choosing_positions_are_refused_when_saved() {
    for (url, expected) in [
        ("https://{{input.host}}/x", "in the last label of the host"),
        ("https://api.{{input.tld}}/x", "in the last label of the host"),
        (
            "https://api.example.{{input.tld}}./x",
            "in the last label of the host",
        ),
        ("https://a.example-{{input.x}}/", "in the last label of the host"),
        ("https://[::{{input.x}}]/", "inside an IPv6 address"),
        (
            "{{secrets.BASE}}{{input.path}}",
            "followed by something other than",
        ),
        ("{{secrets.BASE}}v1/x", "followed by something other than"),
        ("https://h.example/%{{input.x}}", "does not begin a %XX escape"),
        ("https://h.example/%2{{input.x}}", "does not begin a %XX escape"),
        ("https://h.example/a b/{{input.x}}", "whitespace"),
        ("https://h.example\\{{input.x}}", "backslash"),
        ("https://h.example:8o/{{input.x}}", "port that is not a number"),
        ("ftp://{{input.host}}/x", "must start with http://, https://"),
        ("https://:80/{{input.x}}", "with a host"),
    ] {
        let err = UrlTemplate::parse(url).expect_err(url);
        assert!(err.message.contains(expected), "{url}: {}", err.message);
    }
    // A tag may fill a label below a literal domain, or be the whole host if it is a secret.
    for ok in [
        "https://{{input.sub}}.example.com/",
        "https://api-{{input.region}}.example.com/",
        "https://{{input.a}}.{{input.b}}.example.com./",
        "https://{{secrets.HOST}}/",
        "https://{{input.sub}}.{{secrets.DOMAIN}}/",
        "https://h.example:{{input.port}}/",
        "https://h.example/%2F{{input.x}}",
    ] {
        UrlTemplate::parse(ok).unwrap_or_else(|e| panic!("{ok}: {}", e.message));
    }
}

#[test]
fn validation_refuses_a_caller_chosen_destination_only_in_steps_with_secrets() {
    let hook = |url: &str, headers: serde_json::Value| json!([{"id": "send", "type": "webhook", "config": {"url": url, "headers": headers}}]);
    let secret = json!({"Authorization": "Bearer {{secrets.TOKEN}}"});
    for url in [
        "{{input.url}}",
        "{{steps.a.output.body.next}}",
        "{{input.base}}/v1/events",
    ] {
        let steps = hook(url, secret.clone());
        let err = validate(None, Some(&steps)).expect_err(url);
        assert_eq!(err.step.as_deref(), Some("send"));
        assert_eq!(err.field.as_deref(), Some("config.url"));
        assert!(err.message.contains("would choose"), "{}", err.message);
        // Without a secret the request carries nothing of the operator's.
        if !url.contains("steps.") {
            validate(None, Some(&hook(url, json!({})))).expect(url);
        }
    }
    validate(None, Some(&hook("{{secrets.URL}}", secret.clone()))).expect("a secret URL is the operator's");
    validate(None, Some(&hook("{{secrets.BASE}}/x/{{input.id}}", secret))).expect("secret base");
    let err = validate(None, Some(&hook("https://{{input.h}}/x", json!({})))).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("config.url"));
    assert!(
        err.message
            .starts_with("step \"send\": config.url has {{input.h}} (byte 8)"),
        "{}",
        err.message
    );
}

#[test]
fn hostile_values_never_change_the_structure_of_the_url() {
    let base = Url::parse("https://u@t.api.example.com:8443/v1/s/x?q=v&z=1#f").unwrap();
    for value in HOSTILE {
        for (url, part) in [
            (
                "https://{{input.x}}@t.api.example.com:8443/v1/s/x?q=v&z=1#f",
                UrlPart::Userinfo,
            ),
            (
                "https://u@{{input.x}}.api.example.com:8443/v1/s/x?q=v&z=1#f",
                UrlPart::Host,
            ),
            (
                "https://u@t.api.example.com:{{input.x}}/v1/s/x?q=v&z=1#f",
                UrlPart::Port,
            ),
            (
                "https://u@t.api.example.com:8443/v1/{{input.x}}/x?q=v&z=1#f",
                UrlPart::Path,
            ),
            (
                "https://u@t.api.example.com:8443/v1/s/x?{{input.x}}=v&z=1#f",
                UrlPart::QueryName,
            ),
            (
                "https://u@t.api.example.com:8443/v1/s/x?q={{input.x}}&z=1#f",
                UrlPart::QueryValue,
            ),
            (
                "https://u@t.api.example.com:8443/v1/s/x?q=v&z=1#{{input.x}}",
                UrlPart::Fragment,
            ),
        ] {
            let rendered = match render(url, value) {
                Ok(r) => r,
                Err(UrlRenderError::Value { part: p, .. }) => {
                    assert_eq!(p, part);
                    // Only these parts refuse values; the others encode anything.
                    assert!(
                        matches!(part, UrlPart::Host | UrlPart::Port | UrlPart::Path),
                        "{url} {value:?}"
                    );
                    continue;
                }
                Err(e) => panic!("{url} with {value:?}: {e}"),
            };
            let got = Url::parse(&rendered).unwrap_or_else(|e| panic!("{rendered}: {e}"));
            // Every component but the one the tag stands in is exactly as in `base`.
            let same = |what: &[UrlPart], a: String, b: String| {
                if !what.contains(&part) {
                    assert_eq!(a, b, "{what:?} changed: {url} with {value:?} gave {rendered}");
                }
            };
            same(
                &[UrlPart::Userinfo],
                got.username().into(),
                base.username().into(),
            );
            same(
                &[UrlPart::Host],
                got.host_str().unwrap().into(),
                base.host_str().unwrap().into(),
            );
            same(
                &[UrlPart::Port],
                format!("{:?}", got.port()),
                format!("{:?}", base.port()),
            );
            same(&[UrlPart::Path], got.path().into(), base.path().into());
            let query = [UrlPart::QueryName, UrlPart::QueryValue];
            same(
                &query,
                got.query().unwrap_or_default().into(),
                base.query().unwrap().into(),
            );
            same(
                &[UrlPart::Fragment],
                got.fragment().unwrap_or_default().into(),
                "f".into(),
            );
            assert_eq!(got.path_segments().unwrap().count(), 3, "{rendered}");
            assert_eq!(got.query_pairs().count(), 2, "{rendered}");
            assert!(got.password().is_none());
            let decoded = decode(match part {
                UrlPart::Userinfo => got.username(),
                UrlPart::Path => got.path_segments().unwrap().nth(1).unwrap(),
                UrlPart::Fragment => got.fragment().unwrap(),
                UrlPart::QueryName => {
                    assert_eq!(got.query_pairs().next().unwrap().0, value);
                    continue;
                }
                UrlPart::QueryValue => {
                    assert_eq!(got.query_pairs().next().unwrap().1, value);
                    continue;
                }
                UrlPart::Host => {
                    assert_eq!(
                        got.host_str().unwrap(),
                        format!("{}.api.example.com", value.to_ascii_lowercase())
                    );
                    continue;
                }
                _ => continue,
            });
            assert_eq!(decoded, value, "{rendered}");
        }
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[test]
fn host_values_are_labels_and_secrets_may_hold_dots() {
    let url = "https://{{input.sub}}.example.com/x";
    assert_eq!(render(url, "Tenant-7").unwrap(), "https://Tenant-7.example.com/x");
    for bad in [
        "evil.test/#",
        "a.b",
        "",
        "-a",
        "a-",
        "münchen",
        "\u{3002}x",
        &"a".repeat(64),
    ] {
        assert!(
            matches!(
                render(url, bad),
                Err(UrlRenderError::Value {
                    part: UrlPart::Host,
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    // Punycode is ASCII and passes.
    assert_eq!(
        render(url, "xn--mnchen-3ya").unwrap(),
        "https://xn--mnchen-3ya.example.com/x"
    );

    let t = UrlTemplate::parse("https://{{secrets.HOST}}/x").unwrap();
    let mut out = String::new();
    let ok = t.render_into(&mut out, 1000, |_| {
        Ok::<_, Infallible>(Cow::Borrowed("hooks.example.com"))
    });
    assert!(ok.is_ok());
    assert_eq!(out, "https://hooks.example.com/x");
    for bad in ["evil.test/#", "a@b", "h:1", ""] {
        let r = t.render_into(&mut out, 1000, |_| Ok::<_, Infallible>(Cow::Borrowed(bad)));
        assert!(r.is_err(), "{bad:?} gave {out}");
    }
}

#[test]
fn dot_segments_and_empty_segments_are_refused() {
    let url = "https://h.example/users/{{input.id}}/keys";
    for bad in ["..", ".", ""] {
        assert!(
            matches!(
                render(url, bad),
                Err(UrlRenderError::Value {
                    part: UrlPart::Path,
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    // A literal dot beside the tag cannot form one either.
    let err = render("https://h.example/a/.{{input.x}}/b", ".").unwrap_err();
    assert!(matches!(err, UrlRenderError::Value { .. }), "{err:?}");
    assert_eq!(render(url, "...").unwrap(), "https://h.example/users/.../keys");
    assert_eq!(
        render(url, "a/../../admin").unwrap(),
        "https://h.example/users/a%2F..%2F..%2Fadmin/keys"
    );
}

#[test]
fn the_start_tag_must_be_an_http_url_and_rendering_stops_at_the_limit() {
    let t = UrlTemplate::parse("{{secrets.BASE}}/x").unwrap();
    let mut out = String::new();
    let r = t.render_into(&mut out, 100, |_| {
        Ok::<_, Infallible>(Cow::Borrowed("javascript:alert(1)//"))
    });
    assert!(matches!(
        r,
        Err(UrlRenderError::Value {
            part: UrlPart::Start,
            ..
        })
    ));
    let t = UrlTemplate::parse("https://h.example/{{input.a}}").unwrap();
    let r = t.render_into(&mut out, 100, |_| {
        Ok::<_, Infallible>(Cow::Owned("a".repeat(1000)))
    });
    assert!(matches!(r, Err(UrlRenderError::TooLong { limit: 100 })));
    assert!(out.len() <= 1000, "stopped before encoding more");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_value_in_a_path_query_or_fragment_decodes_back_and_keeps_the_host(value in any::<String>()) {
        let url = "https://api.example.com/a/{{input.p}}/b?{{input.n}}={{input.v}}&k=1#{{input.f}}";
        match render(url, &value) {
            Ok(rendered) => {
                let got = Url::parse(&rendered).unwrap();
                prop_assert_eq!(got.host_str(), Some("api.example.com"));
                prop_assert_eq!(got.port(), None);
                prop_assert_eq!(got.username(), "");
                let segments: Vec<_> = got.path_segments().unwrap().collect();
                prop_assert_eq!(segments.len(), 3);
                prop_assert_eq!(decode(segments[1]), value.clone());
                let pairs: Vec<_> = got.query_pairs().collect();
                prop_assert_eq!(pairs.len(), 2);
                prop_assert_eq!(&pairs[0].0, &value);
                prop_assert_eq!(&pairs[0].1, &value);
                prop_assert_eq!(decode(got.fragment().unwrap()), value);
            }
            Err(UrlRenderError::Value { part: UrlPart::Path, .. }) => {
                prop_assert!(value.is_empty() || value == "." || value == "..");
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    #[test]
    fn any_value_in_a_host_label_stays_under_the_literal_domain(value in "[ -~\u{80}-\u{3100}]{0,70}") {
        let url = "https://{{input.sub}}.example.com/x";
        if let Ok(rendered) = render(url, &value) {
            let got = Url::parse(&rendered).unwrap();
            let host = got.host_str().unwrap().to_owned();
            prop_assert_eq!(host.clone(), format!("{}.example.com", value.to_ascii_lowercase()));
            prop_assert_eq!(host.matches('.').count(), 2);
            prop_assert_eq!(got.path(), "/x");
        }
    }
}
