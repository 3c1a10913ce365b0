//! A real etcd cluster for the cluster-mode tests: three members of Debian's `etcd-server`,
//! started from a temporary directory on free loopback ports, with mutual TLS on the client
//! and peer ports from a CA made for the run (a site's etcd has its own CA, apart from
//! Finesse's). Members can be killed, stopped (SIGSTOP) and started again, and the leader is
//! found by asking each member.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::process::{Child, Command};

/// The client certificate files a host presents, and the CA.
#[derive(Debug, Clone)]
pub struct EtcdPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One member.
pub struct EtcdMember {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
}

/// A three-member cluster.
pub struct Etcd {
    pub dir: tempfile::TempDir,
    pub members: Vec<EtcdMember>,
    /// What a host (the daemon, a test client) presents.
    pub client: EtcdPki,
    server: EtcdPki,
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write PEM");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A CA, a server and peer certificate for 127.0.0.1 (usable as a client too, as etcd's
/// peers need), and a client certificate.
fn pki(dir: &Path) -> (EtcdPki, EtcdPki) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "etcd test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let issue = |names: Vec<String>, uses: Vec<ExtendedKeyUsagePurpose>, stem: &str| {
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, stem);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = uses;
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        let files = EtcdPki {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        write_private(&files.key, &key.serialize_pem());
        files
    };
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let server = issue(
        vec!["127.0.0.1".into(), "localhost".into()],
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        "server",
    );
    let client = issue(
        vec!["finesse-taskd".into()],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
        "client",
    );
    (server, client)
}

/// A free loopback port below the ephemeral range (as the simulator draws its own).
fn port() -> u16 {
    use rand::Rng as _;
    let mut rng = rand::thread_rng();
    for _ in 0..500 {
        let p = rng.gen_range(10_000..30_000);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free loopback port for etcd");
}

impl Etcd {
    /// Starts three members and waits until the cluster has a leader.
    pub async fn start() -> Etcd {
        assert!(
            which("etcd"),
            "etcd is not installed: apt-get install -y etcd-server (scripts/install-deps.sh does)"
        );
        let dir = tempfile::Builder::new().prefix("etcd-").tempdir().unwrap();
        let (server, client) = pki(dir.path());
        let members: Vec<EtcdMember> = (0..3)
            .map(|i| EtcdMember {
                name: format!("etcd{i}"),
                client_port: port(),
                peer_port: port(),
                child: None,
            })
            .collect();
        let mut etcd = Etcd {
            dir,
            members,
            client,
            server,
        };
        for i in 0..3 {
            etcd.spawn(i, "new");
        }
        etcd.wait_leader(Duration::from_secs(30)).await;
        etcd
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=https://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", m.name)))
            .unwrap();
        let s = &self.server;
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .arg(format!(
                "--listen-client-urls=https://127.0.0.1:{}",
                m.client_port
            ))
            .arg(format!(
                "--advertise-client-urls=https://127.0.0.1:{}",
                m.client_port
            ))
            .arg(format!(
                "--listen-peer-urls=https://127.0.0.1:{}",
                m.peer_port
            ))
            .arg(format!(
                "--initial-advertise-peer-urls=https://127.0.0.1:{}",
                m.peer_port
            ))
            .arg(format!("--initial-cluster={}", cluster.join(",")))
            .arg(format!("--initial-cluster-state={state}"))
            .arg("--initial-cluster-token=finesse-taskd-test")
            .arg("--client-cert-auth")
            .arg("--peer-client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(&s.ca)
            .arg("--cert-file")
            .arg(&s.cert)
            .arg("--key-file")
            .arg(&s.key)
            .arg("--peer-trusted-ca-file")
            .arg(&s.ca)
            .arg("--peer-cert-file")
            .arg(&s.cert)
            .arg("--peer-key-file")
            .arg(&s.key)
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .env("ETCD_UNSUPPORTED_ARCH", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn etcd");
        self.members[i].child = Some(child);
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("https://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// The `[cluster]` keys for a host named `member` (prefix `prefix`).
    pub fn cluster_toml(&self, member: &str, prefix: &str) -> String {
        format!(
            "[cluster]\nendpoints = {:?}\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\nprefix = {prefix:?}\nmember = {member:?}\n",
            self.endpoints(),
            self.client.ca,
            self.client.cert,
            self.client.key,
        )
    }

    /// `etcdctl` against the members (mutual TLS), its stdout.
    pub async fn ctl(&self, args: &[&str]) -> Result<String, String> {
        self.ctl_at(&self.endpoints(), args).await
    }

    async fn ctl_at(&self, endpoints: &[String], args: &[&str]) -> Result<String, String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg("--cacert")
            .arg(&self.client.ca)
            .arg("--cert")
            .arg(&self.client.cert)
            .arg("--key")
            .arg(&self.client.key)
            .arg("--dial-timeout=1s")
            .arg("--command-timeout=2s")
            .args(args)
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The index of the member that leads, as the members that answer say (a member that is
    /// down makes `etcdctl endpoint status` fail as a whole, so each is asked alone).
    pub async fn leader(&self) -> Option<usize> {
        for (i, endpoint) in self.endpoints().iter().enumerate() {
            let Ok(text) = self
                .ctl_at(
                    std::slice::from_ref(endpoint),
                    &["endpoint", "status", "--write-out=json"],
                )
                .await
            else {
                continue;
            };
            let Ok(all) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let status = &all[0]["Status"];
            let (Some(me), Some(leader)) = (
                status["header"]["member_id"].as_u64(),
                status["leader"].as_u64(),
            ) else {
                continue;
            };
            if me == leader && leader != 0 {
                return Some(i);
            }
        }
        None
    }

    /// Waits until a member says it leads.
    pub async fn wait_leader(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(i) = self.leader().await {
                return i;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd elected no leader in {limit:?}; see {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs member `i`.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill().await;
        }
    }

    /// Starts member `i` again on its data directory.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i, "existing");
    }

    /// The etcd processes' pids, for SIGSTOP.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().and_then(Child::id)
    }
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}
