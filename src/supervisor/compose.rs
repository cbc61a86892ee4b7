//! The compose services of an instance, in the supervisor: one thread starts them with the
//! Compose tool in dependency waves (so they can wait for process services and the
//! reverse), watches their containers with one engine query per tick, copies their output
//! to the instance's logs, and stops them.

use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Child;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use super::LOG_FLUSH_WAIT;
use super::shared::Shared;
use super::unix::spawn_log_follower;
use crate::compose::Runner;
use crate::docker::{Container, Engine, Health};
use crate::logs::{self, LogHandle, LogSink};
use crate::state::{ComposeBackend, ComposeReady, ServiceRecord, ServiceSpec, ServiceState};

/// What the supervisor's main thread asks of the compose thread.
pub enum ComposeCommand {
    /// Make these services active (for `up SERVICE…` on a running instance).
    Start(Vec<String>),
    Restart(Vec<String>),
    /// Stop these containers now (their dependants are gone, something they depend on
    /// is about to stop); `done` is dropped when they are stopped.
    Stop(Vec<String>, Sender<()>),
    /// Remove every container and network of the instance and end the thread.
    Down(Sender<()>),
    /// The engine reported an event of one of the instance's containers (it started,
    /// died, changed health, …): look at them now.
    Changed,
}

/// Poll interval while a service is starting.
const FAST_TICK: Duration = Duration::from_millis(20);
/// Poll interval once every service is settled, when the engine's events cannot be had.
const SLOW_TICK: Duration = Duration::from_millis(1000);
/// Once every service is settled and the engine reports the containers' events, the
/// thread sleeps until one comes; this is only a safety net.
const IDLE_TICK: Duration = Duration::from_secs(30);
/// How often berth runs a starting service's healthcheck test itself.
const TEST_INTERVAL: Duration = Duration::from_millis(50);
/// How long one run of the test may take before it counts as failed.
const TEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a container may take to appear after `up -d` returned.
const APPEAR_GRACE: Duration = Duration::from_secs(10);

pub struct ComposeThread {
    pub shared: Arc<Shared>,
    pub commands: Receiver<ComposeCommand>,
    pub backend: ComposeBackend,
    pub project: String,
    pub token: String,
    pub logs: LogSink,
    /// The sending side of `commands`, for the thread that forwards the engine's events.
    pub changes: Sender<ComposeCommand>,
}

/// Forwards the engine's events about the instance's containers as
/// [`ComposeCommand::Changed`], until the compose thread is gone. Returns whether the
/// event stream could be opened (else the compose thread keeps polling).
fn forward_events(
    engine: &Engine,
    project: &str,
    changes: Sender<ComposeCommand>,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> bool {
    let labels = [(crate::compose::LABEL_INSTANCE, project)];
    let Ok(mut events) = engine.events(&labels, Some(std::time::SystemTime::now())) else {
        return false;
    };
    std::thread::Builder::new()
        .name("compose-events".to_string())
        .spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match events.next_within(Duration::from_secs(1)) {
                    Ok(Some(_)) => {
                        if changes.send(ComposeCommand::Changed).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    // The stream broke: the compose thread's safety-net poll goes on.
                    Err(_) => return,
                }
            }
        })
        .is_ok()
}

/// The `docker logs -f` copying one container's output into the service's log.
struct Follower {
    child: Child,
    container: String,
}

#[derive(Default)]
struct Watch {
    /// Services `up -d` was run for, and when.
    launched: HashMap<String, Instant>,
    followers: HashMap<String, Follower>,
    /// When berth last ran each service's healthcheck test itself.
    tested_at: HashMap<String, Instant>,
    /// When each service's last follower ended, so a new one does not copy lines twice.
    followed_until: HashMap<String, String>,
    /// How many times each service was started, for the separators in its log.
    runs: HashMap<String, u32>,
}

impl ComposeThread {
    pub fn run(self) {
        let engine = Engine::from_env().ok();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let evented = engine.as_ref().is_some_and(|engine| {
            forward_events(
                engine,
                &self.project,
                self.changes.clone(),
                Arc::clone(&done),
            )
        });
        self.watch(engine.as_ref(), evented);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn watch(&self, engine: Option<&Engine>, evented: bool) {
        let mut watch = Watch::default();
        // Nothing to wait for before the first launch.
        let mut tick = Duration::ZERO;
        loop {
            match self.commands.recv_timeout(tick) {
                Ok(ComposeCommand::Start(services)) => self.activate(&services),
                Ok(ComposeCommand::Restart(services)) => self.restart(&services, &mut watch),
                Ok(ComposeCommand::Stop(services, done)) => {
                    self.stop(&services, &mut watch);
                    drop(done);
                }
                Ok(ComposeCommand::Down(done)) => {
                    self.down(&mut watch);
                    drop(done);
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.down(&mut watch);
                    return;
                }
                Ok(ComposeCommand::Changed) | Err(RecvTimeoutError::Timeout) => {}
            }
            self.launch(&mut watch);
            if !watch.launched.is_empty() {
                self.observe(engine, &mut watch);
            }
            // Starting services are polled (a port starts to listen without an event);
            // settled ones wait for the engine's next event about them.
            tick = match (self.settled(), evented) {
                (false, _) => FAST_TICK,
                (true, true) => IDLE_TICK,
                (true, false) => SLOW_TICK,
            };
        }
    }

    fn runner(&self) -> Runner<'_> {
        Runner {
            backend: &self.backend,
            project: &self.project,
        }
    }

    fn compose_names(&self) -> Vec<String> {
        self.shared
            .snapshot()
            .services
            .iter()
            .filter(|(_, record)| record.is_compose())
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn settled(&self) -> bool {
        self.shared
            .snapshot()
            .services
            .values()
            .filter(|record| record.is_compose() && record.active)
            .all(|record| {
                matches!(
                    record.state,
                    ServiceState::Ready
                        | ServiceState::Failed
                        | ServiceState::Exited
                        | ServiceState::Stopped
                )
            })
    }

    fn log(&self, record: &ServiceRecord) -> LogHandle {
        self.logs.open(record.log(), record.log_limits())
    }

    /// Writes the separator of a new run into the service's log.
    fn mark_run(&self, name: &str, watch: &mut Watch) {
        let Some(record) = self.shared.service(name) else {
            return;
        };
        let run = watch.runs.entry(name.to_string()).or_default();
        *run += 1;
        let _ = self
            .log(&record)
            .remark(&logs::run_started(*run, SystemTime::now()));
    }

    fn set_state(&self, name: &str, state: ServiceState, message: Option<String>) {
        self.shared.update_service(name, |record| {
            if state == ServiceState::Ready && record.state != ServiceState::Ready {
                record.ready_at = Some(now());
            }
            record.state = state;
            record.message = message;
        });
    }

    fn activate(&self, services: &[String]) {
        for name in services {
            self.shared.update_service(name, |record| {
                if !record.active {
                    record.active = true;
                    record.state = ServiceState::Waiting;
                }
            });
        }
    }

    /// Starts, in one `up -d`, every active service not yet started whose dependencies
    /// are up or start in the same call (Compose orders those itself).
    fn launch(&self, watch: &mut Watch) {
        let file = self.shared.snapshot();
        let mut batch: Vec<String> = file
            .services
            .iter()
            .filter(|(name, record)| {
                record.is_compose()
                    && record.active
                    && !watch.launched.contains_key(*name)
                    && !matches!(
                        record.state,
                        ServiceState::Failed | ServiceState::Stopping | ServiceState::Stopped
                    )
            })
            .map(|(name, _)| name.clone())
            .collect();
        // Drop services whose dependencies are neither up nor in the batch, until stable.
        loop {
            let before = batch.len();
            let current = batch.clone();
            batch.retain(|name| {
                file.services[name].depends_on().iter().all(|dependency| {
                    current.contains(dependency)
                        || watch.launched.contains_key(dependency)
                            && file
                                .services
                                .get(dependency)
                                .is_some_and(|d| d.is_compose())
                        || file
                            .services
                            .get(dependency)
                            .is_some_and(|record| record.state.is_up())
                })
            });
            if batch.len() == before {
                break;
            }
        }
        for (name, record) in &file.services {
            if !record.is_compose() || !record.active || watch.launched.contains_key(name) {
                continue;
            }
            if let Some(failed) = record.depends_on().iter().find(|dependency| {
                file.services
                    .get(*dependency)
                    .is_some_and(|d| d.state == ServiceState::Failed)
            }) {
                let message = format!("dependency `{failed}` failed");
                if record.message.as_deref() != Some(&message) {
                    self.set_state(name, ServiceState::Waiting, Some(message));
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        for name in &batch {
            self.mark_run(name, watch);
            self.shared.update_service(name, |record| {
                record.state = ServiceState::Starting;
                record.started_at = Some(now());
                record.ready_at = None;
                record.message = None;
            });
        }
        match self.runner().up(&batch) {
            Ok(()) => {
                let at = Instant::now();
                watch
                    .launched
                    .extend(batch.iter().map(|name| (name.clone(), at)));
            }
            Err(error) => {
                let text = error.to_string();
                for name in &batch {
                    let _ = self
                        .log(&file.services[name])
                        .remark(&format!("berth: {text}"));
                    self.set_state(name, ServiceState::Failed, Some(first_line(&text)));
                }
            }
        }
    }

    /// One engine query for every container of the instance; each launched service's
    /// state follows its container.
    fn observe(&self, engine: Option<&Engine>, watch: &mut Watch) {
        let Some(engine) = engine else {
            return;
        };
        let Ok(containers) =
            engine.containers(&[("com.docker.compose.project", &self.project)], true)
        else {
            return;
        };
        let by_service: HashMap<&str, &Container> = containers
            .iter()
            .filter_map(|container| {
                Some((container.label("com.docker.compose.service")?, container))
            })
            .collect();
        let file = self.shared.snapshot();
        let launched: Vec<(String, Instant)> = watch
            .launched
            .iter()
            .map(|(name, at)| (name.clone(), *at))
            .collect();
        for (name, launched_at) in launched {
            let Some(record) = file.services.get(&name) else {
                continue;
            };
            let ServiceSpec::Compose(spec) = &record.spec else {
                continue;
            };
            let Some(container) = by_service.get(name.as_str()) else {
                if launched_at.elapsed() > APPEAR_GRACE && record.state != ServiceState::Failed {
                    self.set_state(&name, ServiceState::Failed, Some("no container".into()));
                }
                continue;
            };
            if record.container.as_deref() != Some(&container.name) {
                let container_name = container.name.clone();
                self.shared
                    .update_service(&name, |record| record.container = Some(container_name));
            }
            self.follow(&name, container, record, watch);
            let (state, message) = match container.state.as_str() {
                "running" => match (&spec.ready, container.health()) {
                    (_, Some(Health::Unhealthy)) => (
                        ServiceState::Failed,
                        Some("the container's healthcheck reports unhealthy".to_string()),
                    ),
                    (ComposeReady::Running, _) => (ServiceState::Ready, None),
                    (ComposeReady::Healthcheck { .. } | ComposeReady::Tcp { .. }, _)
                        if record.state == ServiceState::Ready =>
                    {
                        (ServiceState::Ready, None)
                    }
                    // Healthy is not enough: an image's entrypoint may run a temporary
                    // server (PostgreSQL's init, on a Unix socket only) that passes the
                    // check; the published ports must listen in the container too.
                    (ComposeReady::Healthcheck { test, ports }, health) => {
                        let healthy = health == Some(Health::Healthy)
                            || self.test_passes(engine, &name, &container.id, test, watch);
                        if !healthy {
                            (
                                ServiceState::Starting,
                                Some("waiting for the healthcheck".to_string()),
                            )
                        } else if ports_listen(engine, &container.id, &record.ports, ports) {
                            (ServiceState::Ready, None)
                        } else {
                            (
                                ServiceState::Starting,
                                Some("healthy; waiting for its ports to listen".to_string()),
                            )
                        }
                    }
                    (ComposeReady::Tcp { ports }, _) => {
                        if ports_listen(engine, &container.id, &record.ports, ports) {
                            (ServiceState::Ready, None)
                        } else {
                            (ServiceState::Starting, None)
                        }
                    }
                },
                "restarting" => (
                    ServiceState::Backoff,
                    Some("the container is restarting".to_string()),
                ),
                "exited" | "dead" => {
                    let code = exit_code(&container.status);
                    // Let the follower copy the container's last lines before `up`
                    // reads them for its error.
                    self.wait_follower(&name, record, watch);
                    self.shared
                        .update_service(&name, |record| record.exit_code = code);
                    match code {
                        Some(0) => (ServiceState::Exited, Some("exited with status 0".into())),
                        Some(code) => (
                            ServiceState::Failed,
                            Some(format!("the container exited with status {code}")),
                        ),
                        None => (ServiceState::Failed, Some(container.status.clone())),
                    }
                }
                "paused" => (ServiceState::Stopped, Some("paused".to_string())),
                _ => (ServiceState::Starting, None),
            };
            if record.state != state || record.message != message {
                self.set_state(&name, state, message);
            }
        }
    }

    /// Runs the healthcheck's test in the container, at most every [`TEST_INTERVAL`]:
    /// Docker runs its first check only one `interval` after the start, which would make
    /// every `up` wait that long for a service that is ready much sooner.
    fn test_passes(
        &self,
        engine: &Engine,
        name: &str,
        container: &str,
        test: &[String],
        watch: &mut Watch,
    ) -> bool {
        if test.is_empty()
            || watch
                .tested_at
                .get(name)
                .is_some_and(|at| at.elapsed() < TEST_INTERVAL)
        {
            return false;
        }
        watch.tested_at.insert(name.to_string(), Instant::now());
        engine
            .exec(container, test, TEST_TIMEOUT)
            .is_ok_and(|code| code == Some(0))
    }

    /// Keeps one `docker logs -f` running per container.
    fn follow(&self, name: &str, container: &Container, record: &ServiceRecord, watch: &mut Watch) {
        if let Some(follower) = watch.followers.get_mut(name) {
            let alive = matches!(follower.child.try_wait(), Ok(None));
            if alive && follower.container == container.id {
                return;
            }
            if let Some(mut old) = watch.followers.remove(name) {
                let _ = old.child.kill();
                let _ = old.child.wait();
            }
            watch.followed_until.insert(name.to_string(), unix_now());
        }
        // A created container has no output yet, and `docker logs -f` on it returns at once.
        if container.state == "created"
            || container.state != "running" && watch.followed_until.contains_key(name)
        {
            return;
        }
        let since = watch.followed_until.get(name).map(String::as_str);
        let Ok(output) = self.log(record).attach() else {
            return;
        };
        if let Ok(child) = spawn_log_follower(&container.id, since, output, &self.token) {
            watch.followers.insert(
                name.to_string(),
                Follower {
                    child,
                    container: container.id.clone(),
                },
            );
        }
    }

    fn wait_follower(&self, name: &str, record: &ServiceRecord, watch: &mut Watch) {
        if let Some(follower) = watch.followers.get_mut(name) {
            let deadline = Instant::now() + Duration::from_millis(500);
            while matches!(follower.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.log(record).flush(LOG_FLUSH_WAIT);
    }

    fn restart(&self, services: &[String], watch: &mut Watch) {
        let names: Vec<String> = if services.is_empty() {
            self.compose_names()
        } else {
            services.to_vec()
        };
        let (running, pending): (Vec<String>, Vec<String>) = names
            .into_iter()
            .partition(|name| watch.launched.contains_key(name));
        self.activate(&pending);
        if running.is_empty() {
            return;
        }
        for name in &running {
            self.mark_run(name, watch);
            self.shared.update_service(name, |record| {
                record.state = ServiceState::Starting;
                record.restarts += 1;
                record.ready_at = None;
                record.message = None;
            });
        }
        if let Err(error) = self.runner().restart(&running) {
            for name in &running {
                self.set_state(
                    name,
                    ServiceState::Failed,
                    Some(first_line(&error.to_string())),
                );
            }
        }
        let at = Instant::now();
        for name in running {
            watch.launched.insert(name, at);
        }
    }

    fn stop(&self, services: &[String], watch: &mut Watch) {
        let started: Vec<String> = services
            .iter()
            .filter(|name| watch.launched.contains_key(*name))
            .cloned()
            .collect();
        if !started.is_empty() {
            for name in &started {
                self.set_state(name, ServiceState::Stopping, None);
            }
            if let Err(error) = self.runner().stop(&started) {
                crate::daemon_log!("berth supervisor: {error}");
            }
        }
        for name in services {
            watch.launched.remove(name);
            self.end_follower(name, watch);
            self.mark_stopped(name);
        }
    }

    fn down(&self, watch: &mut Watch) {
        for name in self.compose_names() {
            self.set_state(&name, ServiceState::Stopping, None);
        }
        if let Err(error) = self.runner().down(false) {
            crate::daemon_log!("berth supervisor: {error}");
        }
        for name in self.compose_names() {
            self.end_follower(&name, watch);
            self.mark_stopped(&name);
        }
        watch.launched.clear();
    }

    fn end_follower(&self, name: &str, watch: &mut Watch) {
        if let Some(mut follower) = watch.followers.remove(name) {
            let _ = follower.child.kill();
            let _ = follower.child.wait();
        }
    }

    fn mark_stopped(&self, name: &str) {
        self.shared.update_service(name, |record| {
            if record.state != ServiceState::Inactive {
                record.state = ServiceState::Stopped;
            }
            record.message = None;
        });
    }
}

/// Whether the service listens behind the published host port `host`: read from the
/// container's own socket table when berth may (exact: a container that exits before it
/// listens is never taken for ready, however loaded the machine), else probed through
/// Docker's proxy. The container port is the number the port's name starts with (`80`,
/// `80-2`).
/// Whether every published port in `ports` listens in the container.
fn ports_listen(
    engine: &Engine,
    container: &str,
    named: &indexmap::IndexMap<String, u16>,
    ports: &[u16],
) -> bool {
    if ports.is_empty() {
        return true;
    }
    let pid = engine
        .inspect(container)
        .ok()
        .and_then(|details| details.pid);
    ports.iter().all(|port| port_ready(pid, named, *port))
}

fn port_ready(pid: Option<u32>, named: &indexmap::IndexMap<String, u16>, host: u16) -> bool {
    let container_port = named
        .iter()
        .find(|(_, port)| **port == host)
        .and_then(|(name, _)| {
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u16>().ok()
        });
    let inside = pid
        .zip(container_port)
        .and_then(|(pid, port)| crate::process::listens_in_namespace_of(pid, port));
    match inside {
        Some(listening) => listening,
        None => answers(host),
    }
}

/// Whether something answers on a published port. Docker's userland proxy accepts every
/// connection as soon as the container runs and closes it at once when nothing listens
/// inside, so a connection that stays open (or says something) counts, one closed at
/// once does not.
fn answers(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    // The proxy dials the container as soon as it accepts, and a refusal on the bridge
    // network is immediate: 10 ms of silence means something listens.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(error) => matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The status code in a status such as `Exited (1) 3 seconds ago`.
fn exit_code(status: &str) -> Option<i32> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split(')').next()?.parse().ok()
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Now as `docker logs --since` reads it: Unix seconds with nanoseconds.
fn unix_now() -> String {
    let elapsed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", elapsed.as_secs(), elapsed.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exit_codes_from_container_status() {
        assert_eq!(exit_code("Exited (0) 2 seconds ago"), Some(0));
        assert_eq!(exit_code("Exited (137) About a minute ago"), Some(137));
        assert_eq!(exit_code("Up 3 seconds"), None);
    }
}
