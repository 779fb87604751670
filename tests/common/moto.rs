//! moto's S3 server on a free loopback port, for the remote-cache tests and
//! benchmark. `AMT_MOTO_SERVER` names its `moto_server` (scripts/test.sh and
//! scripts/bench.sh install it and set the variable).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server, stopped on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a raw HTTP/1.0 request and returns the whole reply.
fn http(port: u16, request: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

impl Moto {
    /// Starts the server and creates `bucket`; `None` when `AMT_MOTO_SERVER` is unset.
    pub fn from_env(bucket: &str) -> Option<Self> {
        let bin = std::env::var_os("AMT_MOTO_SERVER")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(port, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not come up on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let reply = http(
            port,
            &format!("PUT /{bucket} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"),
        )
        .expect("creating the bucket");
        assert!(
            reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
            "creating the bucket: {reply}"
        );
        Some(moto)
    }

    /// Writes (or overwrites) an object, as anyone holding the credentials
    /// could, with boto3 from moto's own venv (S3 wants signed writes).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let bin = std::env::var_os("AMT_MOTO_SERVER").expect("AMT_MOTO_SERVER");
        let python = std::path::Path::new(&bin).with_file_name("python");
        let script = "import boto3, sys\n\
            s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', \
            aws_secret_access_key='test', region_name='us-east-1')\n\
            s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=sys.stdin.buffer.read())\n";
        let mut child = Command::new(python)
            .args(["-c", script, &format!("http://127.0.0.1:{}", self.port), bucket, key])
            .stdin(Stdio::piped())
            .spawn()
            .expect("running moto's python");
        child.stdin.take().unwrap().write_all(body).unwrap();
        assert!(child.wait().unwrap().success(), "putting {key}");
    }

    /// The variables that point object_store at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL".into(),
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }
}
