//! Every environment variable berth reads or sets, in one place.

/// Where the ledger lives (`ledger.json`, `ledger.lock`). Default:
/// `$XDG_STATE_HOME/berth`, else `~/.local/state/berth`. Tests always set it.
pub const BERTH_HOME: &str = "BERTH_HOME";
/// Read: the hosts file `berth router hosts --write` edits (default `/etc/hosts`).
pub const BERTH_HOSTS_FILE: &str = "BERTH_HOSTS_FILE";
/// Read: selects the instance like `--name`. Set: in every process, the instance's name.
pub const BERTH_INSTANCE: &str = "BERTH_INSTANCE";
/// Set in every process: the instance's index (a small integer, unique per project).
pub const BERTH_INDEX: &str = "BERTH_INDEX";
/// Set in every process: the port offset the instance runs at.
pub const BERTH_PORT_OFFSET: &str = "BERTH_PORT_OFFSET";
/// Prefix of the per-service port variables: `BERTH_PORT_<SERVICE>` (the service's first
/// port) and `BERTH_PORT_<SERVICE>_<NAME>` (each named port), names upper-cased with `-`
/// turned into `_`.
pub const BERTH_PORT_PREFIX: &str = "BERTH_PORT_";
/// Set in every process: the instance's project name.
pub const BERTH_PROJECT: &str = "BERTH_PROJECT";
/// Set in every process: the instance's root directory.
pub const BERTH_ROOT: &str = "BERTH_ROOT";
/// Set in every process: the instance's data directory (`{{ instance.data }}`).
pub const BERTH_DATA: &str = "BERTH_DATA";
/// Set in a process whose service declares a port: that port (its first one).
pub const PORT: &str = "PORT";
/// Set in every process: a random token identifying the supervisor run that started it,
/// so that `down` finds every process of the instance, even one that left its group.
pub const BERTH_RUN_TOKEN: &str = "BERTH_RUN_TOKEN";
/// Read: how long to wait for the ledger lock or an instance's lock, in milliseconds
/// (default 30000).
pub const BERTH_LOCK_TIMEOUT_MS: &str = "BERTH_LOCK_TIMEOUT_MS";
/// Read: when `1`, berth behaves as on a machine without cgroup v2: it creates no cgroup
/// for an instance and finds a service's processes by their session, process group,
/// process tree, recorded PIDs and run token instead. Read by every command and by the
/// supervisor (which inherits it from `up`); set it for every command of an instance.
pub const BERTH_NO_CGROUP: &str = "BERTH_NO_CGROUP";
/// Read: disables colour when set to anything (see no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// Read: the Compose command to use instead of `docker compose` / `docker-compose`.
pub const BERTH_COMPOSE: &str = "BERTH_COMPOSE";
/// Read: how long the Compose tool's `config` may take, in milliseconds (default
/// 30000); berth stops it after that.
pub const BERTH_COMPOSE_CONFIG_TIMEOUT_MS: &str = "BERTH_COMPOSE_CONFIG_TIMEOUT_MS";
/// Read: how long the Compose tool's `up`, `stop`, `restart` and `down` may take, in
/// milliseconds (default 600000: `up` may pull and build images).
pub const BERTH_COMPOSE_TIMEOUT_MS: &str = "BERTH_COMPOSE_TIMEOUT_MS";
/// Read: how long one docker CLI call (`ps`, `inspect`, `rm`, `volume create`, the
/// Compose tool's `version`) may take, in milliseconds (default 60000).
pub const BERTH_DOCKER_TIMEOUT_MS: &str = "BERTH_DOCKER_TIMEOUT_MS";
/// Read: how long one copy of data may take (`db dump FILE`, `db restore`, `db dump` to
/// stdout, a volume's `docker cp` in a snapshot), in milliseconds (default 3600000).
pub const BERTH_DATA_TIMEOUT_MS: &str = "BERTH_DATA_TIMEOUT_MS";
/// Read: how long a `per_instance` `create` or `drop` command may take, in milliseconds
/// (default 120000).
pub const BERTH_PER_INSTANCE_TIMEOUT_MS: &str = "BERTH_PER_INSTANCE_TIMEOUT_MS";
/// Read: how long one git call of `berth new` or `rm --worktree` (`git worktree add`,
/// `remove`, `status`) may take, in milliseconds (default 600000).
pub const BERTH_GIT_TIMEOUT_MS: &str = "BERTH_GIT_TIMEOUT_MS";
/// Read: how long one `[worktree] setup` command may take, in milliseconds (default
/// 1800000).
pub const BERTH_SETUP_TIMEOUT_MS: &str = "BERTH_SETUP_TIMEOUT_MS";

/// The variable carrying a service's port: `BERTH_PORT_API`, `BERTH_PORT_API_ADMIN`.
pub fn port_variable(service: &str, port_name: Option<&str>) -> String {
    let mut name = format!("{BERTH_PORT_PREFIX}{}", upper(service));
    if let Some(port_name) = port_name {
        name.push('_');
        name.push_str(&upper(port_name));
    }
    name
}

/// `BERTH_URL_<SERVICE>`: `http://127.0.0.1:PORT` of the service's first TCP port.
pub fn url_variable(service: &str) -> String {
    format!("BERTH_URL_{}", upper(service))
}

fn upper(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn port_variables_are_upper_snake_case() {
        assert_eq!(super::port_variable("web-app", None), "BERTH_PORT_WEB_APP");
        assert_eq!(
            super::port_variable("api", Some("admin")),
            "BERTH_PORT_API_ADMIN"
        );
    }
}
