use super::*;
use Operation::*;

fn op(method: Method, path: &str) -> Operation {
    Operation::of(&method, &ExtraPath::parse(path).unwrap())
}

#[test]
fn reads_of_exact_shapes() {
    let cases: &[(&str, Operation)] = &[
        ("", LandingPage),
        ("/", LandingPage),
        ("/conformance", Conformance),
        ("/api", ApiDocument),
        ("/openapi", ApiDocument),
        ("/processes", Processes),
        ("/processes/hello-world", Process),
        ("/processes/hello%2Dworld", Process),
        ("/processes/hello-world/execution", Unknown),
        ("/jobs", Jobs),
        ("/jobs/abc", Jobs),
        ("/jobs/abc/results", Jobs),
        ("/collections", Collections),
        ("/collections/lakes", Collection),
        ("/collections/lakes/items", Items),
        ("/collections/lakes/items/1", Items),
        ("/collections/lakes/queryables", Unknown),
        ("/collections/lakes/items/1/x", Unknown),
    ];
    for (path, expected) in cases {
        assert_eq!(op(Method::GET, path), *expected, "GET {path}");
        assert_eq!(op(Method::HEAD, path), *expected, "HEAD {path}");
    }
}

#[test]
fn ambiguous_shapes_are_unknown() {
    for path in [
        "/processes/",
        "/processes//hello-world",
        "//processes",
        "/Processes",
        "/PROCESSES/hello-world",
        "/processes;x",
        "/processes/hello;x",
        "/%70rocesses/x/y",
        "/conformance/",
        "/collections/lakes/",
    ] {
        let got = op(Method::GET, path);
        assert!(
            matches!(got, Unknown),
            "GET {path} read as {got:?}, not Unknown"
        );
    }
    // One level of percent-decoding, as every backend does: still the same shape.
    assert_eq!(op(Method::GET, "/%70rocesses"), Processes);
}

#[test]
fn methods_other_than_get_and_head() {
    assert_eq!(op(Method::POST, "/processes/echo/execution"), Execute);
    assert_eq!(op(Method::POST, "/processes/echo/execution/"), Write);
    assert_eq!(op(Method::POST, "/processes/echo/Execution"), Write);
    assert_eq!(op(Method::POST, "/processes/echo/jobs"), Write);
    assert_eq!(op(Method::POST, "/processes"), Write);
    assert_eq!(op(Method::POST, ""), Write);
    assert_eq!(op(Method::POST, "/collections/lakes/items"), Write);
    for method in [
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ] {
        for path in ["", "/processes", "/processes/echo/execution", "/jobs/1"] {
            assert_eq!(op(method.clone(), path), Write, "{method} {path}");
        }
    }
}

#[test]
fn access_by_operation() {
    for o in [
        LandingPage,
        Conformance,
        ApiDocument,
        Processes,
        Process,
        Collections,
        Collection,
    ] {
        assert_eq!(o.access(false), Access::Public, "{o:?}");
        assert_eq!(o.access(true), Access::Public, "{o:?}");
    }
    for o in [Execute, Jobs, Items, Unknown] {
        assert_eq!(o.access(false), Access::Protected, "{o:?}");
        assert_eq!(o.access(true), Access::Public, "{o:?}");
    }
    assert_eq!(Write.access(false), Access::Write);
    assert_eq!(Write.access(true), Access::Write);
}

#[test]
fn method_overrides_are_refused() {
    let mut headers = HeaderMap::new();
    assert_eq!(check_method_override(&headers, "f=json"), Ok(()));
    for name in METHOD_OVERRIDES {
        headers.clear();
        headers.insert(name, "GET".parse().unwrap());
        assert_eq!(
            check_method_override(&headers, ""),
            Err(RuleError::MethodOverride),
            "{name}"
        );
    }
    headers.clear();
    for query in ["_method=DELETE", "a=1&_METHOD=PUT", "%5Fmethod=x"] {
        assert_eq!(
            check_method_override(&headers, query),
            Err(RuleError::MethodOverride),
            "{query}"
        );
    }
}
