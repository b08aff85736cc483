//! The twitcherctl binary against stub servers that answer as the recorded originals did:
//! the exact request it sends (method, path, body, credentials) and what it prints.

mod common;

use assert_cmd::cargo::cargo_bin_cmd;
use common::{Answer, Recorded, Stub, closed_port_url, ows_report};
use predicates::prelude::*;
use predicates::str::{contains, is_empty, is_match};

/// `Authorization` for demo:demo.
const DEMO_BASIC: &str = "Basic ZGVtbzpkZW1v";

fn ctl() -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("twitcherctl");
    // Requests must reach the stub directly, whatever the test machine's settings.
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn rpc_response(value: &str) -> Answer {
    Answer::xml(&format!(
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value>{value}</value>\n</param>\n</params>\n</methodResponse>\n"
    ))
}

fn rpc_fault(code: i32, message: &str) -> Answer {
    Answer::xml(&format!(
        "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n\
         <member>\n<name>faultCode</name>\n<value><int>{code}</int></value>\n</member>\n\
         <member>\n<name>faultString</name>\n<value><string>{message}</string></value>\n</member>\n\
         </struct></value>\n</fault>\n</methodResponse>\n"
    ))
}

/// The service struct as T05 returned it (golden/v056 case 32).
const EMU_STRUCT: &str = "<struct>\n\
    <member>\n<name>url</name>\n<value><string>http://127.0.0.1:15056/wps</string></value>\n</member>\n\
    <member>\n<name>name</name>\n<value><string>emu</string></value>\n</member>\n\
    <member>\n<name>type</name>\n<value><string>wps</string></value>\n</member>\n\
    <member>\n<name>purl</name>\n<value><string></string></value>\n</member>\n\
    <member>\n<name>public</name>\n<value><boolean>0</boolean></value>\n</member>\n\
    <member>\n<name>auth</name>\n<value><string>token</string></value>\n</member>\n\
    <member>\n<name>verify</name>\n<value><boolean>1</boolean></value>\n</member>\n\
    </struct>";
const EMU_T05: &str = "{'url': 'http://127.0.0.1:15056/wps', 'name': 'emu', 'type': 'wps', 'purl': '', 'public': False, 'auth': 'token', 'verify': True}";

/// The service as T06's REST API returned it (golden/v060 case 14).
const EMU_JSON: &str = r#"{"url": "http://localhost:15060/wps", "name": "emu", "type": "wps", "purl": "", "auth": "token", "public": false, "verify": true}"#;
const EMU_T06: &str = "{'url': 'http://localhost:15060/wps', 'name': 'emu', 'type': 'wps', 'purl': '', 'auth': 'token', 'public': False, 'verify': True}";

fn assert_rpc_call(request: &Recorded, method: &str) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/RPC2");
    assert_eq!(request.header("content-type"), Some("text/xml"));
    assert!(
        request
            .body
            .contains(&format!("<methodName>{method}</methodName>")),
        "{}",
        request.body
    );
}

// ---------------------------------------------------------------- the tutorial

#[test]
fn tutorial_add() {
    let stub = Stub::start(|_| {
        Answer::json(
            r#"{"name": "demo_app", "client_id": "8f031f95ad86455f951679739baef421", "client_secret": "980dac003afb4140b01687a724f04f62", "redirect_uri": "", "scope": ["compute", "register"]}"#,
        )
    });
    ctl()
        .args(["-s", &stub.url, "-k", "add", "--username", "demo", "--password", "demo", "--name", "demo_app"])
        .assert()
        .success()
        .stdout(
            "{'name': 'demo_app', 'client_id': '8f031f95ad86455f951679739baef421', 'client_secret': \
             '980dac003afb4140b01687a724f04f62', 'redirect_uri': '', 'scope': ['compute', 'register']}\n",
        )
        .stderr(is_empty());
    let request = stub.single();
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/oauth/client?name=demo_app&redirect_uri=");
    assert_eq!(request.header("authorization"), Some(DEMO_BASIC));
}

#[test]
fn tutorial_gentoken_with_oauth() {
    let stub = Stub::start(|_| {
        Answer::json(
            r#"{"access_token": "TrbEmljqCBq0zMuHD5crryemlYMEEC", "expires_in": 3600, "token_type": "Bearer", "scope": "register"}"#,
        )
    });
    ctl()
        .args(["-s", &stub.url, "-k", "gentoken", "-i", "client_id", "-s", "client_secret", "--scope", "register"])
        .assert()
        .success()
        // As the originals printed it (golden/v060 071f38c case 02), expires_at = now + 3600.
        .stdout(is_match(
            r"^\{'access_token': 'TrbEmljqCBq0zMuHD5crryemlYMEEC', 'expires_in': 3600, 'token_type': 'Bearer', 'scope': \['register'\], 'expires_at': \d{10}\.\d+\}\n$",
        ).unwrap())
        .stderr(is_empty());
    let request = stub.single();
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/oauth/token");
    assert_eq!(
        request.body,
        "grant_type=client_credentials&scope=register&client_id=client_id&client_secret=client_secret"
    );
    // base64("client_id:client_secret")
    assert_eq!(
        request.header("authorization"),
        Some("Basic Y2xpZW50X2lkOmNsaWVudF9zZWNyZXQ=")
    );
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
}

#[test]
fn tutorial_register_with_token() {
    let stub = Stub::start(|_| Answer::json(EMU_JSON));
    ctl()
        .args([
            "-s",
            &stub.url,
            "-k",
            "-t",
            "TOKEN",
            "register",
            "--name",
            "emu",
            "http://localhost:5000/wps",
        ])
        .assert()
        .success()
        .stdout(format!("{EMU_T06}\n"));
    let request = stub.single();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("POST", "/services")
    );
    assert_eq!(request.header("authorization"), Some("Bearer TOKEN"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    // twitcherctl 0.6's body (ctl-wire case 09), key order included.
    assert_eq!(
        request.body,
        r#"{"type":"wps","purl":"","auth":"token","verify":"true","name":"emu","url":"http://localhost:5000/wps"}"#
    );
}

#[test]
fn tutorial_register_cert() {
    let stub =
        Stub::start(|_| Answer::json(&EMU_JSON.replace(r#""auth": "token""#, r#""auth": "cert""#)));
    ctl()
        .args([
            "-s",
            &stub.url,
            "-k",
            "-t",
            "TOKEN",
            "register",
            "--name",
            "emu",
            "--auth",
            "cert",
            "http://localhost:5000/wps",
        ])
        .assert()
        .success()
        .stdout(contains("'auth': 'cert'"));
    assert!(stub.single().body.contains(r#""auth":"cert""#));
}

#[test]
fn tutorial_list_without_credentials_uses_xmlrpc() {
    let stub = Stub::start(|_| {
        rpc_response(&format!(
            "<array><data>\n<value>{EMU_STRUCT}</value>\n</data></array>"
        ))
    });
    ctl()
        .args(["-s", &stub.url, "-k", "list"])
        .assert()
        .success()
        .stdout(format!("[{EMU_T05}]\n"))
        .stderr(is_empty());
    let request = stub.single();
    assert_rpc_call(&request, "list_services");
    assert_eq!(
        request.header("authorization"),
        None,
        "no nouser:nopass any more"
    );
}

#[test]
fn list_without_credentials_falls_back_to_rest_when_xmlrpc_wants_auth() {
    let stub = Stub::start(|r| match r.path() {
        "/RPC2" => Answer::new(401, "text/plain", "401 Unauthorized"),
        _ => Answer::json(&format!("[{EMU_JSON}]")),
    });
    ctl()
        .args(["-s", &stub.url, "-k", "--debug", "list"])
        .assert()
        .success()
        .stdout(format!("[{EMU_T06}]\n"))
        .stderr(contains("trying the REST interface"));
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[1].method.as_str(), requests[1].target.as_str()),
        ("GET", "/services")
    );
    assert_eq!(requests[1].header("authorization"), None);
}

// ---------------------------------------------------------------- XML-RPC (T05)

#[test]
fn xmlrpc_gentoken() {
    let stub = Stub::start(|_| {
        rpc_response(
            "<struct>\n<member>\n<name>access_token</name>\n<value><string>5ba95cee9ce34a8197132b1fc586610f</string></value>\n</member>\n\
             <member>\n<name>expires_at</name>\n<value><int>1795899866</int></value>\n</member>\n</struct>",
        )
    });
    ctl()
        .args(["-s", &stub.url, "gentoken", "-H", "24"])
        .assert()
        .success()
        .stdout("{'access_token': '5ba95cee9ce34a8197132b1fc586610f', 'expires_at': 1795899866}\n");
    let request = stub.single();
    assert_rpc_call(&request, "generate_token");
    assert!(
        request
            .body
            .contains("<param>\n<value><int>24</int></value>\n</param>"),
        "{}",
        request.body
    );
}

#[test]
fn xmlrpc_gentoken_defaults_to_one_hour() {
    let stub = Stub::start(|_| rpc_response("<struct></struct>"));
    ctl()
        .args(["-s", &stub.url, "gentoken"])
        .assert()
        .success()
        .stdout("{}\n");
    assert!(stub.single().body.contains("<value><int>1</int></value>"));
}

#[test]
fn xmlrpc_revoke() {
    let stub = Stub::script(vec![
        rpc_response("<boolean>1</boolean>"),
        rpc_response("<boolean>0</boolean>"),
    ]);
    ctl()
        .args([
            "-s",
            &stub.url,
            "revoke",
            "f9b76083b46b467d824cd9c7284e9e7f",
        ])
        .assert()
        .success()
        .stdout("True\n");
    ctl()
        .args(["-s", &stub.url, "revoke", "doesnotexist"])
        .assert()
        .success()
        .stdout("False\n");
    let requests = stub.requests();
    assert_rpc_call(&requests[0], "revoke_token");
    assert!(
        requests[0]
            .body
            .contains("<value><string>f9b76083b46b467d824cd9c7284e9e7f</string></value>")
    );
}

#[test]
fn xmlrpc_revoke_all() {
    let stub = Stub::start(|_| rpc_response("<boolean>1</boolean>"));
    ctl()
        .args(["-s", &stub.url, "revoke", "-A"])
        .assert()
        .success()
        .stdout("True\n");
    let request = stub.single();
    assert_rpc_call(&request, "revoke_all_tokens");
    assert!(request.body.contains("<params>\n</params>"));
}

#[test]
fn xmlrpc_register_with_all_options() {
    let stub = Stub::start(|_| rpc_response(EMU_STRUCT));
    ctl()
        .args([
            "-s",
            &stub.url,
            "register",
            "--name",
            "emu_opts",
            "--type",
            "wps",
            "--purl",
            "https://example.org/emu",
            "--public",
            "--auth",
            "cert",
            "--verify",
            "false",
            "http://127.0.0.1:15056/wps",
        ])
        .assert()
        .success()
        .stdout(format!("{EMU_T05}\n"));
    let request = stub.single();
    assert_rpc_call(&request, "register_service");
    let body = request.body.replace('\n', "");
    assert!(
        body.contains("<param><value><string>emu_opts</string></value></param>"),
        "{body}"
    );
    assert!(
        body.contains("<param><value><string>http://127.0.0.1:15056/wps</string></value></param>"),
        "{body}"
    );
    assert!(
        body.contains(
            "<struct><member><name>type</name><value><string>wps</string></value></member>\
             <member><name>purl</name><value><string>https://example.org/emu</string></value></member>\
             <member><name>public</name><value><boolean>1</boolean></value></member>\
             <member><name>auth</name><value><string>cert</string></value></member>\
             <member><name>verify</name><value><string>false</string></value></member></struct>"
        ),
        "{body}"
    );
}

#[test]
fn register_without_name_invents_one() {
    let stub = Stub::start(|_| rpc_response(EMU_STRUCT));
    ctl()
        .args(["-s", &stub.url, "register", "http://127.0.0.1:15056/wps"])
        .assert()
        .success();
    let body = stub.single().body.replace('\n', "");
    let first = "<params><param><value><string>";
    let start = body.find(first).unwrap() + first.len();
    let name = &body[start..start + body[start..].find('<').unwrap()];
    assert!(
        is_match("^[a-z]+_[a-z]+$").unwrap().eval(name) && name.len() <= 25,
        "{name}"
    );
}

#[test]
fn xmlrpc_unregister_and_clear() {
    let stub = Stub::script(vec![
        rpc_response("<boolean>0</boolean>"),
        rpc_response("<boolean>1</boolean>"),
    ]);
    ctl()
        .args(["-s", &stub.url, "unregister", "nosuch"])
        .assert()
        .success()
        .stdout("False\n");
    ctl()
        .args(["-s", &stub.url, "clear"])
        .assert()
        .success()
        .stdout("True\n");
    let requests = stub.requests();
    assert_rpc_call(&requests[0], "unregister_service");
    assert!(requests[0].body.contains("<string>nosuch</string>"));
    assert_rpc_call(&requests[1], "clear_services");
}

#[test]
fn xmlrpc_empty_list() {
    let stub = Stub::start(|_| rpc_response("<array><data>\n</data></array>"));
    ctl()
        .args(["-s", &stub.url, "list"])
        .assert()
        .success()
        .stdout("[]\n");
}

#[test]
fn xmlrpc_fault_is_reported() {
    let stub = Stub::start(|_| rpc_fault(-32500, "Service name is too short: x"));
    ctl()
        .args(["-s", &stub.url, "register", "--name", "x", "http://127.0.0.1:15056/wps"])
        .assert()
        .code(1)
        .stdout(is_empty())
        .stderr("twitcherctl: could not register the service: Service name is too short: x (XML-RPC fault -32500)\n");
}

#[test]
fn xmlrpc_with_basic_credentials() {
    // T05 with basic auth (golden/v056 case 89): the server has no REST, so -u/-p fall back.
    let stub = Stub::start(|r| match r.path() {
        "/RPC2" => rpc_response("<array><data>\n</data></array>"),
        path => Answer::new(500, "text/xml; charset=UTF-8", ows_report(path)),
    });
    ctl()
        .args([
            "-s", &stub.url, "-u", "admin", "-p", "s3cret", "--debug", "list",
        ])
        .assert()
        .success()
        .stdout("[]\n")
        .stderr(contains("trying the XML-RPC interface").and(contains("s3cret").not()));
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].target, "/services");
    assert_rpc_call(&requests[1], "list_services");
    assert_eq!(
        requests[1].header("authorization"),
        Some("Basic YWRtaW46czNjcmV0")
    );
}

// ---------------------------------------------------------------- REST (T06)

#[test]
fn rest_list_with_basic_credentials() {
    let stub = Stub::start(|_| Answer::json(&format!("[{EMU_JSON}]")));
    ctl()
        .args([
            "-s",
            &stub.url,
            "-k",
            "--username",
            "demo",
            "--password",
            "demo",
            "list",
        ])
        .assert()
        .success()
        .stdout(format!("[{EMU_T06}]\n"));
    let request = stub.single();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("GET", "/services")
    );
    assert_eq!(request.header("authorization"), Some(DEMO_BASIC));
    assert_eq!(request.header("accept"), Some("application/json"));
}

#[test]
fn rest_register_with_every_option() {
    let stub = Stub::start(|_| Answer::json("{}"));
    ctl()
        .args([
            "-s",
            &format!("{}/ctl", stub.url),
            "-k",
            "-u",
            "demo",
            "-p",
            "demo",
            "register",
            "--name",
            "x",
            "--type",
            "wms",
            "--purl",
            "http://p/wms",
            "--auth",
            "cert",
            "--verify",
            "false",
            "http://h/wms?a=1",
        ])
        .assert()
        .success()
        .stdout("{}\n");
    let request = stub.single();
    assert_eq!(request.target, "/ctl/services");
    assert_eq!(
        request.body,
        r#"{"type":"wms","purl":"http://p/wms","auth":"cert","verify":"false","name":"x","url":"http://h/wms?a=1"}"#
    );
}

#[test]
fn rest_register_public() {
    let stub = Stub::start(|_| Answer::json("{}"));
    ctl()
        .args([
            "-s",
            &stub.url,
            "-t",
            "T",
            "register",
            "--name",
            "p",
            "--public",
            "http://h/wps",
        ])
        .assert()
        .success();
    assert!(
        stub.single()
            .body
            .ends_with(r#""url":"http://h/wps","public":true}"#)
    );
}

#[test]
fn rest_unregister_and_clear() {
    let stub = Stub::script(vec![
        Answer::json("true"),
        Answer::json("false"),
        Answer::json("true"),
    ]);
    let demo = ["-s", &stub.url, "-u", "demo", "-p", "demo"];
    ctl()
        .args(demo)
        .args(["unregister", "boring_grouse"])
        .assert()
        .success()
        .stdout("True\n");
    ctl()
        .args(demo)
        .args(["unregister", "doesnotexist"])
        .assert()
        .success()
        .stdout("False\n");
    ctl()
        .args(demo)
        .args(["clear"])
        .assert()
        .success()
        .stdout("True\n");
    let targets: Vec<(String, String)> = stub
        .requests()
        .into_iter()
        .map(|r| (r.method, r.target))
        .collect();
    assert_eq!(
        targets,
        [
            ("DELETE".to_owned(), "/services/boring_grouse".to_owned()),
            ("DELETE".to_owned(), "/services/doesnotexist".to_owned()),
            ("DELETE".to_owned(), "/services".to_owned()),
        ]
    );
}

#[test]
fn rest_unregister_unknown_as_json_404_is_false() {
    let stub = Stub::start(|_| {
        Answer::new(
            404,
            "application/json",
            r#"{"description": "Service not found"}"#,
        )
    });
    ctl()
        .args(["-s", &stub.url, "-t", "T", "unregister", "nosuch"])
        .assert()
        .success()
        .stdout("False\n");
    assert_eq!(
        stub.requests().len(),
        1,
        "a JSON 404 is an answer, no fallback"
    );
}

#[test]
fn rest_absent_falls_back_to_xmlrpc() {
    let stub = Stub::start(|r| match r.path() {
        "/RPC2" => rpc_response("<boolean>1</boolean>"),
        path => Answer::not_found(path),
    });
    ctl()
        .args(["-s", &stub.url, "-t", "T", "clear"])
        .assert()
        .success()
        .stdout("True\n");
    let requests = stub.requests();
    assert_eq!(requests[0].target, "/services");
    assert_rpc_call(&requests[1], "clear_services");
}

#[test]
fn xmlrpc_absent_falls_back_to_rest() {
    let stub = Stub::start(|r| match r.path() {
        "/services/emu" => Answer::json("true"),
        path => Answer::not_found(path),
    });
    ctl()
        .args(["-s", &stub.url, "unregister", "emu"])
        .assert()
        .success()
        .stdout("True\n");
    let requests = stub.requests();
    assert_eq!(requests[0].target, "/RPC2");
    assert_eq!(
        (requests[1].method.as_str(), requests[1].target.as_str()),
        ("DELETE", "/services/emu")
    );
}

#[test]
fn neither_interface() {
    let stub = Stub::start(|r| Answer::not_found(r.path()));
    ctl()
        .args(["-s", &stub.url, "list"])
        .assert()
        .code(1)
        .stderr(contains(
            "could not list services: the REST interface is not available on this server",
        ));
}

#[test]
fn rest_validation_error() {
    let stub = Stub::start(|_| {
        Answer::new(
            400,
            "application/json",
            r#"{"status": "error", "errors": [{"location": "body", "name": "url", "description": "Required"}]}"#,
        )
    });
    ctl()
        .args(["-s", &stub.url, "-t", "T", "register", "--name", "n", "x"])
        .assert()
        .code(1)
        .stderr(format!("twitcherctl: could not register the service: {}/services answered 400 Bad Request: url: Required\n", stub.url));
}

#[test]
fn rest_string_result_is_printed_bare() {
    // 071f38c answered refused writes with a JSON string; its twitcherctl printed it as is.
    let stub = Stub::start(|_| Answer::json(r#""{\"success\": False}""#));
    ctl()
        .args(["-s", &stub.url, "-t", "T", "clear"])
        .assert()
        .success()
        .stdout("{\"success\": False}\n");
}

#[test]
fn wrong_password_is_a_credentials_error() {
    // golden/v060 case 33: Pyramid's 401 page.
    let stub = Stub::start(|_| {
        Answer::new(
            401,
            "text/html; charset=UTF-8",
            "<html>\n <head>\n  <title>401 Unauthorized</title>\n </head>\n</html>",
        )
    });
    ctl()
        .args(["-s", &stub.url, "-k", "-u", "demo", "-p", "nope", "list"])
        .assert()
        .code(1)
        .stdout(is_empty())
        .stderr(
            contains("twitcherctl: could not list services: bad or missing credentials")
                .and(contains("401 Unauthorized"))
                .and(contains("nope").not()),
        );
    assert_eq!(
        stub.requests().len(),
        1,
        "no fallback with credentials given"
    );
}

#[test]
fn add_without_credentials_is_refused_by_the_server() {
    let stub = Stub::start(|_| {
        Answer::new(
            401,
            "text/plain; charset=UTF-8",
            "401 Unauthorized\n\nThis server could not verify…",
        )
    });
    ctl()
        .args(["-s", &stub.url, "add", "--name", "x"])
        .assert()
        .code(1)
        .stderr(contains(
            "could not add the client application: bad or missing credentials",
        ));
    assert_eq!(stub.single().header("authorization"), None);
}

#[test]
fn add_encodes_its_parameters() {
    let stub = Stub::start(|_| Answer::json(r#"{"name": "a b"}"#));
    ctl()
        .args([
            "-s",
            &stub.url,
            "-u",
            "demo",
            "-p",
            "demo",
            "add",
            "-n",
            "a b",
            "-r",
            "http://x/cb?q=1",
        ])
        .assert()
        .success()
        .stdout("{'name': 'a b'}\n");
    assert_eq!(
        stub.single().target,
        "/oauth/client?name=a+b&redirect_uri=http%3A%2F%2Fx%2Fcb%3Fq%3D1"
    );
}

// ---------------------------------------------------------------- OAuth errors and prompts

#[test]
fn oauth_error_is_reported_like_the_original() {
    // golden/v060 case 10: 401 {"error": "invalid_scope"}.
    let stub =
        Stub::start(|_| Answer::new(401, "application/json", r#"{"error": "invalid_scope"}"#));
    ctl()
        .args([
            "-s", &stub.url, "-k", "gentoken", "-i", "ID", "-s", "SECRET", "--scope", "register",
        ])
        .assert()
        .code(1)
        .stdout(is_empty())
        .stderr("twitcherctl: could not generate an OAuth2 token: (invalid_scope)\n");
}

#[test]
fn oauth_error_with_description() {
    let stub = Stub::start(|_| {
        Answer::new(
            400,
            "application/json",
            r#"{"error": "invalid_request", "error_description": "Duplicate scope parameter."}"#,
        )
    });
    ctl()
        .args(["-s", &stub.url, "gentoken", "-i", "ID", "-s", "SECRET"])
        .assert()
        .code(1)
        .stderr("twitcherctl: could not generate an OAuth2 token: (invalid_request) Duplicate scope parameter.\n");
}

#[test]
fn oauth_two_scopes_and_keycloak() {
    let stub = Stub::start(|_| {
        Answer::json(
            r#"{"access_token": "t", "token_type": "bearer", "expires_in": 60, "scope": "compute register"}"#,
        )
    });
    ctl()
        .args([
            "-s",
            &format!("{}/ctl", stub.url),
            "gentoken",
            "-i",
            "CID",
            "-s",
            "CSECRET",
            "-S",
            "compute",
            "register",
            "-K",
        ])
        .assert()
        .success()
        .stdout(contains("'scope': ['compute', 'register']"));
    let request = stub.single();
    assert_eq!(
        request.target,
        "/ctl/auth/realms/demo/protocol/openid-connect/token"
    );
    assert_eq!(
        request.body,
        "grant_type=client_credentials&scope=compute+register&client_id=CID&client_secret=CSECRET"
    );
}

#[test]
fn missing_client_id_without_a_terminal_is_an_error() {
    let stub = Stub::start(|_| Answer::json("{}"));
    ctl()
        .args(["-s", &stub.url, "-k", "gentoken", "-s", "SECRET"])
        .write_stdin("a485d26840b74f8da12abd35977b1be3\n")
        .assert()
        .code(1)
        .stdout(is_empty())
        .stderr(contains(
            "could not generate an OAuth2 token: the client ID is missing: give it with -i/--client-id",
        ));
    assert!(stub.requests().is_empty());
}

#[test]
fn missing_client_secret_without_a_terminal_is_an_error() {
    ctl()
        .args(["gentoken", "-i", "ID"])
        .write_stdin("")
        .assert()
        .code(1)
        .stderr(contains(
            "the client secret is missing: give it with -s/--client-secret",
        ));
}

// ---------------------------------------------------------------- connection errors

#[test]
fn server_down() {
    let url = closed_port_url();
    ctl()
        .args(["-s", &url, "-k", "-u", "demo", "-p", "demo", "list"])
        .assert()
        .code(1)
        .stdout(is_empty())
        .stderr(
            is_match(r"^twitcherctl: could not list services: cannot reach http://127\.0\.0\.1:\d+/services \(.*\)\. Is the server running and is the URL right \(-s/--serverurl\)\? For https with a self-signed certificate use -k/--insecure\n$")
                .unwrap(),
        );
}

#[test]
fn server_down_for_oauth() {
    let url = closed_port_url();
    ctl()
        .args(["-s", &url, "-k", "gentoken", "-i", "a", "-s", "b"])
        .assert()
        .code(1)
        .stderr(
            contains("could not generate an OAuth2 token: cannot reach")
                .and(contains("/oauth/token")),
        );
}

#[test]
fn bad_server_url() {
    ctl()
        .args(["-s", "localhost:8000", "list"])
        .assert()
        .code(1)
        .stderr(contains("invalid server URL \"localhost:8000\""));
}

#[test]
fn garbage_from_the_server() {
    let stub = Stub::start(|_| Answer::new(200, "text/html", "<html>hello</html>"));
    ctl()
        .args(["-s", &stub.url, "list"])
        .assert()
        .code(1)
        .stderr(contains("not an XML-RPC response"));
}

// ---------------------------------------------------------------- output, debug, usage

#[test]
fn json_output() {
    let stub = Stub::start(|_| {
        rpc_response(&format!(
            "<array><data>\n<value>{EMU_STRUCT}</value>\n</data></array>"
        ))
    });
    ctl().args(["-s", &stub.url, "list", "--json"]).assert().success().stdout(
        "[{\"url\":\"http://127.0.0.1:15056/wps\",\"name\":\"emu\",\"type\":\"wps\",\"purl\":\"\",\"public\":false,\"auth\":\"token\",\"verify\":true}]\n",
    );
}

#[test]
fn debug_logs_exchanges_but_no_secrets() {
    let stub = Stub::start(|_| {
        Answer::json(r#"{"access_token": "issued-token-value", "token_type": "Bearer"}"#)
    });
    ctl()
        .args([
            "--debug",
            "-s",
            &stub.url,
            "gentoken",
            "-i",
            "the-id",
            "-s",
            "the-secret",
        ])
        .assert()
        .success()
        .stderr(
            contains(format!(
                "twitcherctl: debug: POST {}/oauth/token (basic auth)",
                stub.url
            ))
            .and(contains("-> 200 OK"))
            .and(contains("the-secret").not())
            .and(contains("issued-token-value").not())
            .and(contains("dGhlLWlkOnRoZS1zZWNyZXQ").not()),
        );
}

#[test]
fn debug_does_not_show_the_bearer_token() {
    let stub = Stub::start(|_| Answer::json("[]"));
    ctl()
        .args([
            "--debug",
            "-s",
            &stub.url,
            "-t",
            "my-register-token",
            "list",
        ])
        .assert()
        .success()
        .stderr(
            contains("GET")
                .and(contains("(bearer token)"))
                .and(contains("my-register-token").not()),
        );
}

#[test]
fn no_command_does_nothing() {
    ctl()
        .args(["-s", &closed_port_url(), "-u", "demo", "-p", "demo"])
        .assert()
        .success()
        .stdout(is_empty());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--bogus", "list"][..],
        &["revoke"],
        &["gentoken", "-H", "1", "-i", "x"],
        &["register"],
    ] {
        ctl()
            .args(args)
            .assert()
            .code(2)
            .stdout(is_empty())
            .stderr(contains("Usage: twitcherctl"));
    }
}

#[test]
fn help_shows_the_tutorial() {
    ctl().arg("--help").assert().success().stdout(
        contains("twitcherctl -k add --username demo --password demo --name demo_app")
            .and(contains(
                "twitcherctl -k gentoken -i CLIENT_ID -s CLIENT_SECRET --scope register",
            ))
            .and(contains(
                "twitcherctl -k -t TOKEN register --name emu http://localhost:5000/wps",
            ))
            .and(contains("twitcherctl -k list"))
            .and(contains("-s, --serverurl <URL>"))
            .and(contains("[default: http://localhost:8000]")),
    );
    ctl()
        .args(["gentoken", "--help"])
        .assert()
        .success()
        .stdout(
            contains("-H, --valid-in-hours <HOURS>")
                .and(contains("-i, --client-id <CLIENT_ID>"))
                .and(contains("-s, --client-secret <CLIENT_SECRET>"))
                .and(contains("-S, --scope <SCOPE>..."))
                .and(contains("-K, --keycloak")),
        );
}

#[test]
fn completion_scripts() {
    for shell in ["bash", "zsh", "fish"] {
        ctl().args(["completion", shell]).assert().success().stdout(
            contains("twitcherctl")
                .and(contains("gentoken"))
                .and(contains("unregister")),
        );
    }
}

#[test]
fn insecure_https_warns() {
    // Nothing listens; the warning comes before the request.
    let url = closed_port_url().replace("http:", "https:");
    ctl()
        .args(["-s", &url, "-k", "list"])
        .assert()
        .code(1)
        .stderr(contains(
            "warning: not checking the server's TLS certificate",
        ));
}

#[test]
fn xmlrpc_token_from_a_server_without_xmlrpc() {
    let stub = Stub::start(|r| {
        Answer::new(
            404,
            "text/plain; charset=UTF-8",
            format!("404 Not Found\n\n{}", r.path()),
        )
    });
    ctl().args(["-s", &stub.url, "gentoken"]).assert().code(1).stderr(format!(
        "twitcherctl: could not generate an XML-RPC token: the XML-RPC interface is not available on this server ({}/RPC2 answered 404)\n",
        stub.url
    ));
}
