//! Provisioners start and stop a compute pool's workers. The decision of
//! how many a pool needs ([`run`]: its tasks over the slots of one worker)
//! knows nothing of how they are started: [`ProcessProvisioner`] runs
//! `weir worker` child processes (what `weir dev` uses); a Kubernetes one
//! (a Deployment per pool, scaled) would implement the same trait.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::workers::Workers;

/// Makes pools have the number of workers asked for.
pub trait Provisioner: Send + Sync + 'static {
    /// `pool` should have `workers` workers; each has [`Self::slots`].
    fn scale<'a>(&'a self, pool: &'a str, workers: usize) -> BoxFuture<'a, ()>;
    /// The slots of one worker this provisioner starts.
    fn slots(&self) -> u32;
    /// Stops every worker it started.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// Every `every`, sizes each pool to its tasks: ⌈tasks ÷ slots⌉ workers,
/// none for a pool without tasks.
pub async fn run(
    workers: Arc<Workers>,
    provisioner: Arc<dyn Provisioner>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut known: Vec<String> = vec![];
    loop {
        let demand = workers.demand();
        for pool in demand.keys() {
            if !known.contains(pool) {
                known.push(pool.clone());
            }
        }
        let slots = provisioner.slots().max(1) as usize;
        for pool in &known {
            let tasks = demand.get(pool).copied().unwrap_or(0);
            provisioner.scale(pool, tasks.div_ceil(slots)).await;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    provisioner.shutdown().await;
}

/// `weir worker` child processes of this process, per pool. A child gets
/// SIGTERM when this process dies, however it dies.
pub struct ProcessProvisioner {
    /// The `weir` binary.
    pub bin: PathBuf,
    pub control_plane: String,
    pub credential_file: PathBuf,
    pub slots: u32,
    /// Each worker's log goes to `<log_dir>/worker-<pool>-<n>.log`, `n`
    /// counting the workers started.
    pub log_dir: PathBuf,
    children: Mutex<HashMap<String, Vec<tokio::process::Child>>>,
    /// Workers started so far: each log file is new.
    started: std::sync::atomic::AtomicU64,
}

impl ProcessProvisioner {
    pub fn new(
        bin: PathBuf,
        control_plane: String,
        credential_file: PathBuf,
        slots: u32,
        log_dir: PathBuf,
    ) -> ProcessProvisioner {
        ProcessProvisioner {
            bin,
            control_plane,
            credential_file,
            slots,
            log_dir,
            children: Mutex::default(),
            started: Default::default(),
        }
    }

    fn spawn(&self, pool: &str) -> std::io::Result<tokio::process::Child> {
        let n = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::fs::File::create(self.log_dir.join(format!("worker-{pool}-{n}.log")))?;
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("worker")
            .args(["--pool", pool])
            .args(["--control-plane", &self.control_plane])
            .args(["--slots", &self.slots.to_string()])
            .arg("--credential-file")
            .arg(&self.credential_file)
            .stdout(std::process::Stdio::from(log.try_clone()?))
            .stderr(std::process::Stdio::from(log))
            .kill_on_drop(true);
        // SAFETY: prctl(2) between fork and exec, touching no memory of the
        // parent: the worker gets SIGTERM when its parent dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.spawn()
    }
}

/// SIGTERM, then up to 30 s for the worker to drain and leave.
async fn stop_child(mut c: tokio::process::Child) {
    if let Some(pid) = c.id() {
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(30), c.wait())
        .await
        .is_err()
    {
        let _ = c.kill().await;
    }
}

impl Provisioner for ProcessProvisioner {
    fn scale<'a>(&'a self, pool: &'a str, workers: usize) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut stopping = vec![];
            {
                let mut all = self.children.lock().unwrap();
                let list = all.entry(pool.to_string()).or_default();
                // Forget workers that exited on their own (they are started
                // again below if still needed).
                list.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
                while list.len() < workers {
                    match self.spawn(pool) {
                        Ok(c) => {
                            tracing::info!(pool, pid = c.id(), "started a worker process");
                            list.push(c);
                        }
                        Err(e) => {
                            tracing::error!(pool, error = %e, "cannot start a worker process");
                            break;
                        }
                    }
                }
                while list.len() > workers {
                    stopping.extend(list.pop());
                }
            }
            for c in stopping {
                tracing::info!(pool, pid = c.id(), "stopping an idle worker process");
                stop_child(c).await;
            }
        })
    }

    fn slots(&self) -> u32 {
        self.slots
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let all: Vec<tokio::process::Child> = self
                .children
                .lock()
                .unwrap()
                .drain()
                .flat_map(|(_, v)| v)
                .collect();
            futures::future::join_all(all.into_iter().map(stop_child)).await;
        })
    }
}
