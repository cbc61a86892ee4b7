//! What berth knows of the engine's containers, networks and volumes, read from the
//! engine's answers (as bollard decodes them). Lists, labels and names can be missing in
//! an answer, so every such field is defaulted here.

use std::collections::{BTreeMap, HashMap};

use bollard::models;

/// A container as the engine lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    /// The container's name, without the engine's leading `/`.
    pub name: String,
    pub image: String,
    /// `running`, `exited`, `created`, `paused`, `restarting`, `removing` or `dead`.
    pub state: String,
    /// The engine's summary, e.g. `Up 3 seconds (healthy)`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PublishedPort>,
}

impl Container {
    /// The health check's verdict, read from [`Container::status`]; `None` when the
    /// container has no health check (or is not running).
    pub fn health(&self) -> Option<Health> {
        health_from_status(&self.status)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// The verdict of a container's health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// Reads the engine's `State.Health.Status`; `none` and unknown words give `None`.
    fn from_word(word: &str) -> Option<Health> {
        match word {
            "starting" => Some(Health::Starting),
            "healthy" => Some(Health::Healthy),
            "unhealthy" => Some(Health::Unhealthy),
            _ => None,
        }
    }
}

/// Reads the health suffix the engine appends to a running container's status.
fn health_from_status(status: &str) -> Option<Health> {
    if status.contains("(health: starting)") {
        Some(Health::Starting)
    } else if status.contains("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.contains("(healthy)") {
        Some(Health::Healthy)
    } else {
        None
    }
}

/// A container port, and the host address it is published on if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// The host address, e.g. `127.0.0.1` or `0.0.0.0`; `None` when not published.
    pub ip: Option<String>,
    pub private_port: u16,
    pub public_port: Option<u16>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// The part of a container's inspection berth needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerDetails {
    pub id: String,
    /// The container's name, without the engine's leading `/`.
    pub name: String,
    /// `State.Status`: `created`, `running`, `paused`, `restarting`, `removing`, `exited`
    /// or `dead`.
    pub state: String,
    /// The last exit code; `None` while the container has not yet finished a run.
    pub exit_code: Option<i64>,
    /// `None` when the container has no health check.
    pub health: Option<Health>,
    /// The PID of its main process on the host while it runs (`State.Pid`).
    pub pid: Option<u32>,
    pub restart_count: u32,
    /// RFC 3339 time of the last start; `None` if it never started.
    pub started_at: Option<String>,
    /// RFC 3339 time of the last exit; `None` if it never exited.
    pub finished_at: Option<String>,
}

impl From<models::ContainerSummary> for Container {
    fn from(summary: models::ContainerSummary) -> Self {
        let name = summary
            .names
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|name| strip_slash(&name).to_string())
            .unwrap_or_default();
        let ports = summary
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|port| PublishedPort {
                ip: port.ip.filter(|ip| !ip.is_empty()),
                private_port: port.private_port,
                public_port: port.public_port.filter(|&public| public != 0),
                protocol: port
                    .typ
                    .map(|protocol| protocol.to_string())
                    .filter(|protocol| !protocol.is_empty())
                    .unwrap_or_else(|| "tcp".to_string()),
            })
            .collect();
        Container {
            id: summary.id.unwrap_or_default(),
            name,
            image: summary.image.unwrap_or_default(),
            state: summary
                .state
                .map(|state| state.to_string())
                .unwrap_or_default(),
            status: summary.status.unwrap_or_default(),
            labels: sorted(summary.labels),
            ports,
        }
    }
}

impl From<models::Network> for Network {
    fn from(network: models::Network) -> Self {
        Network {
            id: network.id.unwrap_or_default(),
            name: network.name.unwrap_or_default(),
            labels: sorted(network.labels),
        }
    }
}

impl From<models::Volume> for Volume {
    fn from(volume: models::Volume) -> Self {
        Volume {
            name: volume.name,
            labels: sorted(Some(volume.labels)),
        }
    }
}

impl From<models::ContainerInspectResponse> for ContainerDetails {
    fn from(inspection: models::ContainerInspectResponse) -> Self {
        let state = inspection.state.unwrap_or_default();
        let status = state
            .status
            .map(|status| status.to_string())
            .unwrap_or_default();
        // The engine reports exit code 0 for a container that has not finished yet.
        let finished_a_run = !matches!(status.as_str(), "created" | "running" | "paused");
        ContainerDetails {
            id: inspection.id.unwrap_or_default(),
            name: strip_slash(&inspection.name.unwrap_or_default()).to_string(),
            exit_code: state.exit_code.filter(|_| finished_a_run),
            health: state
                .health
                .and_then(|health| health.status)
                .and_then(|word| Health::from_word(word.as_ref())),
            pid: state
                .pid
                .and_then(|pid| u32::try_from(pid).ok())
                .filter(|pid| *pid != 0),
            restart_count: inspection
                .restart_count
                .and_then(|count| u32::try_from(count).ok())
                .unwrap_or(0),
            started_at: real_time(state.started_at),
            finished_at: real_time(state.finished_at),
            state: status,
        }
    }
}

fn sorted(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

fn strip_slash(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// The engine writes Go's zero time (`0001-01-01T00:00:00Z`) for "never".
fn real_time(time: Option<String>) -> Option<String> {
    time.filter(|time| !time.is_empty() && !time.starts_with("0001-01-01"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_health_from_status() {
        for (status, expected) in [
            ("Up 3 seconds (healthy)", Some(Health::Healthy)),
            ("Up 3 seconds (unhealthy)", Some(Health::Unhealthy)),
            ("Up 1 second (health: starting)", Some(Health::Starting)),
            ("Up 2 hours", None),
            ("Up 2 hours (Paused)", None),
            ("Exited (0) 5 minutes ago", None),
            ("Created", None),
            ("", None),
        ] {
            assert_eq!(health_from_status(status), expected, "{status}");
        }
    }

    #[test]
    fn converts_the_engine_answers() {
        // As an engine of API 1.41 writes them: nulls where lists and labels are empty.
        let summaries: Vec<models::ContainerSummary> = serde_json::from_str(
            r#"[{"Id":"abc","Names":["/shop-1-web-1","/other/alias"],"Image":"nginx",
                 "State":"running","Status":"Up 3 seconds (health: starting)",
                 "Labels":{"berth.instance":"shop-1"},
                 "Ports":[{"IP":"127.0.0.1","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
                          {"PrivatePort":443,"Type":"tcp"}]},
                {"Id":"def","Names":null,"Image":"x","State":"created","Status":"Created",
                 "Labels":null,"Ports":null}]"#,
        )
        .unwrap();
        let containers: Vec<Container> = summaries.into_iter().map(Container::from).collect();
        assert_eq!(containers[0].name, "shop-1-web-1");
        assert_eq!(containers[0].state, "running");
        assert_eq!(containers[0].label("berth.instance"), Some("shop-1"));
        assert_eq!(containers[0].label("missing"), None);
        assert_eq!(containers[0].health(), Some(Health::Starting));
        assert_eq!(
            containers[0].ports,
            vec![
                PublishedPort {
                    ip: Some("127.0.0.1".to_string()),
                    private_port: 80,
                    public_port: Some(8080),
                    protocol: "tcp".to_string(),
                },
                PublishedPort {
                    ip: None,
                    private_port: 443,
                    public_port: None,
                    protocol: "tcp".to_string(),
                },
            ]
        );
        assert_eq!(containers[1].name, "");
        assert_eq!(containers[1].state, "created");
        assert!(containers[1].labels.is_empty());
        assert!(containers[1].ports.is_empty());

        let volumes: models::VolumeListResponse = serde_json::from_str(
            r#"{"Volumes":[{"Name":"v","Driver":"local","Mountpoint":"/m","Labels":null,
                            "Options":null,"Scope":"local"}],"Warnings":null}"#,
        )
        .unwrap();
        let volume = Volume::from(volumes.volumes.unwrap().remove(0));
        assert_eq!(volume.name, "v");
        assert!(volume.labels.is_empty());
        let network: models::Network =
            serde_json::from_str(r#"{"Id":"n1","Name":"bridge","Labels":null}"#).unwrap();
        assert!(Network::from(network).labels.is_empty());

        let inspection: models::ContainerInspectResponse = serde_json::from_str(
            r#"{"Id":"abc","Name":"/web","RestartCount":2,
                "State":{"Status":"exited","ExitCode":3,"StartedAt":"2024-01-01T00:00:00Z",
                         "FinishedAt":"2024-01-01T00:01:00Z","Health":{"Status":"unhealthy"},
                         "Pid":0}}"#,
        )
        .unwrap();
        assert_eq!(
            ContainerDetails::from(inspection),
            ContainerDetails {
                id: "abc".to_string(),
                name: "web".to_string(),
                state: "exited".to_string(),
                exit_code: Some(3),
                health: Some(Health::Unhealthy),
                pid: None,
                restart_count: 2,
                started_at: Some("2024-01-01T00:00:00Z".to_string()),
                finished_at: Some("2024-01-01T00:01:00Z".to_string()),
            }
        );
        let inspection: models::ContainerInspectResponse = serde_json::from_str(
            r#"{"Id":"abc","Name":"/web","RestartCount":0,
                "State":{"Status":"created","ExitCode":0,"StartedAt":"0001-01-01T00:00:00Z",
                         "FinishedAt":"0001-01-01T00:00:00Z","Pid":0}}"#,
        )
        .unwrap();
        let details = ContainerDetails::from(inspection);
        assert_eq!(details.exit_code, None);
        assert_eq!(details.health, None);
        assert_eq!(details.pid, None);
        assert_eq!(details.started_at, None);
        assert_eq!(details.finished_at, None);
    }
}
