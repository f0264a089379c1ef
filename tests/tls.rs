//! The real TLS stack end to end: the simulator serves HTTPS with a certificate made by rcgen, the
//! binary trusts it through `SSL_CERT_FILE` (as an operator behind a TLS-inspecting proxy would),
//! and a second test sends it all through an HTTPS proxy (CONNECT), as a partner's network does.

use crate::common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The host name the certificate is made for; the proxy test resolves it through the proxy only.
const HOST: &str = "partner-center.test";

/// A CA certificate (PEM) and a server config whose leaf it signed, for `localhost` and [`HOST`].
fn certificates() -> (String, Arc<rustls::ServerConfig>) {
    pc_qualify::partner_center::client::install_tls_provider();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca certificate");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), HOST.to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf certificate");
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("key");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .expect("server config");
    (ca.pem(), Arc::new(config))
}

async fn start_tls_sim() -> (SimHandle, String) {
    let (ca_pem, config) = certificates();
    let sim = simulator::start_tls(
        SimConfig::default(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        config,
    )
    .await
    .expect("TLS simulator starts");
    (sim, ca_pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_https_verifies_the_certificate_with_rustls() {
    let (sim, ca_pem) = start_tls_sim().await;
    let url = format!("https://localhost:{}", sim.addr.port());
    let dir = work_dir("tls");
    dir.write("in.csv", soe_rows(3));
    let mut env = sim_env(&sim);
    for (key, value) in env.iter_mut() {
        if key == "PC_BASE_URL" || key == "PC_AUTHORITY" {
            *value = url.clone();
        }
    }

    // Without the CA the certificate is unknown: the token request fails, nothing is posted.
    let refused = pcq_io("run", &dir, &["--max-attempts", "1"])
        .envs(&env)
        .run()
        .await;
    refused.assert_code(2);
    assert!(posts(&sim).is_empty());

    env.push((
        "SSL_CERT_FILE".to_string(),
        dir.write("ca.pem", &ca_pem).display().to_string(),
    ));
    let output = pcq_io("run", &dir, &["--force"]).envs(&env).run().await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
    assert_eq!(posts(&sim).len(), 3);
}

/// A minimal HTTPS proxy: answers each CONNECT by tunnelling to `target`, recording the authority.
async fn connect_proxy(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let Some(authority) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split_whitespace().next())
                else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                };
                log.lock().expect("log").push(authority.to_string());
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_service_address_is_reached_through_the_https_proxy() {
    let (sim, ca_pem) = start_tls_sim().await;
    let (proxy, seen) = connect_proxy(sim.addr).await;
    // Not a loopback name, so the tool treats it as the real service and uses the proxy; the name
    // resolves nowhere but at the proxy, so a direct connection could not succeed.
    let url = format!("https://{HOST}");
    let dir = work_dir("tls-proxy");
    dir.write("in.csv", soe_rows(2));
    let mut env = sim_env(&sim);
    for (key, value) in env.iter_mut() {
        if key == "PC_BASE_URL" || key == "PC_AUTHORITY" {
            *value = url.clone();
        }
    }
    env.push((
        "SSL_CERT_FILE".to_string(),
        dir.write("ca.pem", &ca_pem).display().to_string(),
    ));
    env.push(("HTTPS_PROXY".to_string(), format!("http://{proxy}")));
    env.push(("NO_PROXY".to_string(), String::new()));
    let output = pcq_io("run", &dir, &["--timeout", "10"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    assert_eq!(posts(&sim).len(), 2);
    let seen = seen.lock().expect("log").clone();
    assert!(!seen.is_empty(), "nothing went through the proxy");
    assert!(
        seen.iter()
            .all(|authority| authority == &format!("{HOST}:443")),
        "{seen:?}"
    );
}
