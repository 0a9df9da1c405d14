use std::path::{Path, PathBuf};

use super::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/web-config")
        .join(name)
}

fn parse(text: &str) -> Result<WebConfigFile, ConfigError> {
    WebConfigFile::parse(text, Path::new("web.yml"))
}

#[test]
fn exporter_toolkit_sample_is_accepted_as_it_is() {
    let file = WebConfigFile::load(&data("web-config.yml")).unwrap();
    let tls = file.tls_server_config.unwrap();
    assert_eq!(tls.cert_file, data("server.crt"));
    assert_eq!(tls.key_file, data("server.key"));
    assert_eq!(tls.client_auth_type, ClientAuthType::NoClientCert);
    assert_eq!(tls.min_version, TlsVersion::TLS12);
    assert_eq!(file.basic_auth_users.len(), 2);
    assert_eq!(file.basic_auth_excluded_paths, ["/-/healthy", "/-/ready"]);
}

#[test]
fn every_documented_key_parses() {
    let file = WebConfigFile::load(&data("full.yml")).unwrap();
    let tls = file.tls_server_config.unwrap();
    assert_eq!(
        tls.client_auth_type,
        ClientAuthType::RequireAndVerifyClientCert
    );
    assert_eq!(tls.client_ca_file, Some(data("ca.crt")));
    assert_eq!(tls.client_allowed_sans.len(), 2);
    assert_eq!(tls.cipher_suites.len(), 3);
    assert_eq!(tls.curve_preferences, ["X25519", "CurveP256"]);
    assert_eq!(file.http_server_config.headers["X-Frame-Options"], "deny");
    let limit = file.rate_limit.unwrap();
    assert_eq!(limit.interval, std::time::Duration::from_millis(100));
    assert_eq!(limit.burst, 20);
}

#[test]
fn empty_file_is_an_empty_config() {
    assert_eq!(parse("").unwrap(), WebConfigFile::default());
    assert_eq!(parse("# nothing\n").unwrap(), WebConfigFile::default());
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    for (text, name) in [
        ("tls_config:\n  cert_file: a\n", "tls_config"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca: x\n  ca_file: c\n",
            "ca_file",
        ),
        ("http_server_config:\n  header: {}\n", "header"),
        ("rate_limit:\n  interval: 1s\n  bursts: 2\n", "bursts"),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(name), "{text}: {err}");
    }
}

#[test]
fn contradictions_are_errors() {
    let cases = [
        ("tls_server_config:\n  cert_file: a\n", "key_file"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
            "without a client_auth_type",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: c\n  client_allowed_sans: [x]\n",
            "client_allowed_sans",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  max_version: TLS11\n",
            "TLS 1.0 and 1.1",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
            "above max_version",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
            "Sometimes",
        ),
        ("http_server_config:\n  headers:\n    Server: x\n", "\"Server\" can not be configured"),
        ("basic_auth_users:\n  alice: plain\n", "not a bcrypt hash"),
    ];
    for (text, expected) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn older_client_auth_name_is_accepted() {
    let file = parse(
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireClientCert\n",
    )
    .unwrap();
    assert_eq!(
        file.tls_server_config.unwrap().client_auth_type,
        ClientAuthType::RequireAnyClientCert
    );
}
