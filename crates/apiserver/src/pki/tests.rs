use super::*;
use rustls::pki_types::UnixTime;

fn sans() -> ServerSans {
    ServerSans {
        ips: vec!["10.43.0.1".parse().unwrap()],
        dns: vec!["api.example".into()],
    }
}

#[test]
fn reload_keeps_ca_and_serving_cert() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pki::load_or_create(dir.path(), &sans()).unwrap();
    let second = Pki::load_or_create(dir.path(), &sans()).unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_eq!(first.serving_der, second.serving_der);
    assert_eq!(
        first.service_account_key_pem(),
        second.service_account_key_pem()
    );
    for key in [CA_KEY, SERVING_KEY, SERVICE_ACCOUNT_KEY] {
        let mode = fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
}

#[test]
fn changed_sans_reissue_serving_cert_only() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pki::load_or_create(dir.path(), &sans()).unwrap();
    let mut more = sans();
    more.ips.push("192.0.2.7".parse().unwrap());
    let second = Pki::load_or_create(dir.path(), &more).unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_ne!(first.serving_der, second.serving_der);

    let (_, cert) = x509_parser::parse_x509_certificate(&second.serving_der).unwrap();
    let names = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .clone();
    let text = format!("{names:?}");
    for want in [
        "kubernetes.default.svc.cluster.local",
        "api.example",
        "localhost",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    assert!(
        names.contains(&x509_parser::extensions::GeneralName::IPAddress(&[
            192, 0, 2, 7
        ]))
    );
    assert!(
        names.contains(&x509_parser::extensions::GeneralName::IPAddress(&[
            127, 0, 0, 1
        ]))
    );
}

#[test]
fn half_a_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Pki::load_or_create(dir.path(), &sans()).unwrap();
    fs::remove_file(dir.path().join(CA_KEY)).unwrap();
    let err = Pki::load_or_create(dir.path(), &sans()).unwrap_err();
    assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err}");
}

#[test]
fn client_cert_verifies_against_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(dir.path(), &ServerSans::default()).unwrap();
    let (cert_pem, key_pem) = pki
        .issue_client_cert("system:admin", &["system:masters", "team-a"])
        .unwrap();
    assert!(key_pem.contains("PRIVATE KEY"));
    let der = pem_to_der(&cert_pem, Path::new("client")).unwrap();

    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der().clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    verifier
        .verify_client_cert(&der, &[], UnixTime::now())
        .unwrap();

    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let orgs: Vec<_> = cert
        .subject()
        .iter_organization()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(orgs, ["system:masters", "team-a"]);
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(cn, "system:admin");
}

#[test]
fn serving_cert_is_not_a_client_cert() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(dir.path(), &ServerSans::default()).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der().clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    assert!(
        verifier
            .verify_client_cert(&pki.serving_der, &[], UnixTime::now())
            .is_err()
    );
}

#[test]
fn three_organizations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(dir.path(), &ServerSans::default()).unwrap();
    let err = pki.issue_client_cert("u", &["a", "b", "c"]).unwrap_err();
    assert!(matches!(err, PkiError::TooManyOrganizations(3)));
    assert!(pki.server_config().is_ok());
}
