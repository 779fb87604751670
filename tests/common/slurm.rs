//! A single-node Slurm cluster on 127.0.0.1 for the executor's tests: munged,
//! slurmctld and slurmd from Debian's packages (scripts/test.sh installs
//! them), with their own key, sockets, ports, state and logs in a temp dir.
//! It starts on first use and its daemons die with the test process. The
//! node claims 32 CPUs (`config_overrides`), so tests running side by side,
//! whose jobs mostly sleep, never queue behind one another.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The running cluster.
pub struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    /// The cluster of this test process, started on first use.
    pub fn get() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(start)
    }

    /// The variables that point Slurm's commands at this cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("SLURM_CONF".into(), self.conf().display().to_string())]
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    /// slurmctld's log: each submission is a line `_slurm_rpc_submit_batch_job: JobId=N`.
    pub fn submitted_jobs(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("slurmctld.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split("_slurm_rpc_submit_batch_job: JobId=").nth(1))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
            .collect()
    }

    /// A Slurm command against this cluster, its stdout.
    pub fn command(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("SLURM_CONF", self.conf())
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `JobState` of a job, as `scontrol show job` gives it.
    pub fn state(&self, job: &str) -> String {
        self.command("scontrol", &["show", "job", job])
            .split_whitespace()
            .find_map(|w| w.strip_prefix("JobState="))
            .unwrap_or("")
            .to_owned()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a daemon from a thread that lives as long as the process, with a
/// parent-death signal, so the daemon dies with the test process.
fn spawn_daemon(program: &str, args: Vec<String>, log: PathBuf) {
    let program = program.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        // SAFETY: prctl only changes the new process's own settings.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn();
        let ok = child.is_ok();
        tx.send(child.map(|_| ()).map_err(|e| format!("{program}: {e}"))).unwrap();
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv().unwrap().unwrap_or_else(|e| {
        panic!("starting {e}; scripts/test.sh installs slurm-wlm and munge")
    });
}

fn start() -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("amt-slurm-")
        .tempdir()
        .unwrap()
        .keep();
    for sub in ["state", "spool"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let key = dir.join("munge.key");
    std::fs::write(&key, (0..1024).map(|i| (i * 7919 % 251) as u8).collect::<Vec<u8>>()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let d = |name: &str| dir.join(name).display().to_string();
    spawn_daemon(
        "munged",
        vec![
            "-F".into(),
            "--force".into(),
            format!("--key-file={}", d("munge.key")),
            format!("--socket={}", d("munge.sock")),
            format!("--pid-file={}", d("munged.pid")),
            format!("--log-file={}", d("munged.log")),
            format!("--seed-file={}", d("munge.seed")),
        ],
        dir.join("munged.out"),
    );
    wait(&dir.join("munge.sock"), "munged's socket");
    let conf = format!(
        "ClusterName=amttest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=100000,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
MessageTimeout=20
SlurmdParameters=config_overrides
DefMemPerCPU=100
NodeName=localhost NodeAddr=127.0.0.1 CPUs=32 RealMemory=64000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
",
        ctld = free_port(),
        slurmd = free_port(),
        sock = d("munge.sock"),
        state = d("state"),
        spool = d("spool"),
        dir = dir.display(),
    );
    std::fs::write(dir.join("slurm.conf"), conf).unwrap();
    let conf = d("slurm.conf");
    spawn_daemon(
        "slurmctld",
        vec!["-D".into(), "-i".into(), "-f".into(), conf.clone()],
        dir.join("slurmctld.out"),
    );
    spawn_daemon("slurmd", vec!["-D".into(), "-f".into(), conf], dir.join("slurmd.out"));
    let cluster = Cluster { dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster.command("sinfo", &["--noheader", "--format=%t"]).contains("idle") {
        assert!(Instant::now() < deadline, "the test cluster's node did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster
}

fn wait(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what} did not appear");
        std::thread::sleep(Duration::from_millis(50));
    }
}
