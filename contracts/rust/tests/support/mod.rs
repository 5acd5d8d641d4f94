//! Real nats-server processes for the live tests: on free loopback ports, with the JetStream
//! store in a temporary directory, stopped and removed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The nats-server that scripts/setup.sh installs, else one on PATH.
fn binary() -> Option<PathBuf> {
    let tools = std::env::var_os("JETKIT_TOOLS").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/jetkit/tools"));
    let installed = [tools, home]
        .into_iter()
        .flatten()
        .map(|t| t.join("bin/nats-server"));
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    installed.chain(on_path).find(|p| p.is_file())
}

/// Runs the test body only when a nats-server exists, and says so when it does not.
pub fn available() -> bool {
    let found = binary().is_some();
    if !found {
        eprintln!(
            "SKIPPED: no nats-server in $JETKIT_TOOLS/bin, ~/.cache/jetkit/tools/bin or PATH (run scripts/setup.sh)"
        );
    }
    found
}

pub struct Server {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl Server {
    /// One JetStream-enabled server.
    pub fn start() -> Server {
        Server::run("jetkit-rust-test", "")
    }

    /// A 3-node JetStream cluster.
    #[allow(dead_code)] // each test file compiles this module; not every one starts a cluster
    pub fn cluster() -> Vec<Server> {
        // Reserved by listening, released just before the servers start: another process may
        // take one in between, which fails the test at start-up rather than in its assertions.
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(listeners);
        let routes: Vec<String> = ports
            .iter()
            .map(|p| format!("\"nats://127.0.0.1:{p}\""))
            .collect();
        ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                Server::run(
                    &format!("jetkit-rust-test-{}", i + 1),
                    &format!(
                        "cluster {{ name: jetkit-rust-test, listen: \"127.0.0.1:{port}\", routes: [{}] }}",
                        routes.join(", ")
                    ),
                )
            })
            .collect()
    }

    fn run(name: &str, extra: &str) -> Server {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let bin = binary().expect("nats-server (check support::available() first)");
        let dir = std::env::temp_dir().join(format!(
            "jetkit-rust-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("server.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: \"127.0.0.1:-1\"\nserver_name: {name}\nports_file_dir: {:?}\njetstream {{ store_dir: {:?} }}\n{extra}\n",
                dir,
                dir.join("js")
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let ports = dir.join(format!(
            "{}_{}.ports",
            bin.file_name().unwrap().to_string_lossy(),
            child.id()
        ));
        let mut server = Server {
            child,
            dir,
            url: String::new(),
        };
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log =
                    std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
                panic!("nats-server exited ({status}):\n{log}");
            }
            // The server may still be writing the file: an unreadable one is read again.
            let read = std::fs::read(&ports)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            if let Some(url) = read.as_ref().and_then(|v| v["nats"][0].as_str()) {
                server.url = url.to_string();
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nats-server wrote no ports file {}", ports.display());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
