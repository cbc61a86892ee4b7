//! The tools: one operation each, its arguments in `params`, its result the struct that
//! `--json` prints (its JSON Schema the tool's output schema) plus the text a person
//! reads. No tool runs a command the call names (there is no `exec`, `shell` or `db
//! shell`): the only programs started are those the project's own configuration
//! declares, through `up`, `restart` and the snapshot tools.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call;
use super::logs::{self, LogLines};
use super::params::{self, Target};
use super::server::Berth;
use crate::context::Context;
use crate::error::Result;
use crate::instance::address::{self, Port, Url};
use crate::instance::snapshot::{self, Restored, SaveOptions, Snapshots};
use crate::instance::worktree::Created;
use crate::instance::{self, DownOptions, LsRow, Progress, StatusView, Stopped};
use crate::output::{env, snapshots, views};
use crate::snapshot::Manifest;

/// What `list_instances` returns: the rows `berth ls --json` prints, in an object (a
/// tool's structured content is an object).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Instances {
    pub instances: Vec<LsRow>,
}

/// The arguments of a tool that acts on an instance.
pub trait Targeted {
    fn target(&self) -> &Target;
}

macro_rules! targeted {
    ($($params:ident),*) => {
        $(impl Targeted for params::$params {
            fn target(&self) -> &Target {
                &self.target
            }
        })*
    };
}

targeted!(
    Only,
    Up,
    Down,
    Restart,
    Logs,
    Env,
    Address,
    SnapshotSave,
    SnapshotRestore
);

impl Berth {
    /// Runs `operation` on the instance the arguments name, with arguments of type `P`.
    async fn act<P, T>(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
        operation: fn(&Context, &P, &dyn Progress) -> Result<T>,
        text: fn(&T) -> String,
    ) -> CallToolResult
    where
        P: DeserializeOwned + Targeted + Send + 'static,
        T: Serialize + Send + 'static,
    {
        let base = Arc::clone(&self.base);
        let run = move |progress: &dyn Progress| {
            let params: P = params::parse(arguments)?;
            let context = params.target().context(&base)?;
            operation(&context, &params, progress)
        };
        call::run(context, run, text).await
    }
}

#[tool_router(vis = "pub(super)")]
impl Berth {
    #[tool(
        description = "Every berth instance on this machine (all projects): name, project, root, state (running, stopped, crashed, stale), ports, git branch and commit. Takes no arguments.",
        input_schema = params::schema::<params::Nothing>(),
        output_schema = schema_for_output::<Instances>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_instances(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let base = Arc::clone(&self.base);
        let run = move |progress: &dyn Progress| {
            let _: params::Nothing = params::parse(arguments)?;
            Ok(Instances {
                instances: instance::list(&base, progress)?,
            })
        };
        call::run(context, run, |listed| views::instances(&listed.instances)).await
    }

    #[tool(
        description = "Bring the project's instance up (as `berth up`): plan its ports, start every service (or those named, with what they depend on), wait until each is ready, and return its services with their state, ports and URLs. Idempotent; after an edit to berth.toml it restarts the instance. Sends progress notifications while it waits (when the call carries a progress token); cancelling the call stops the wait, not the services.",
        input_schema = params::schema::<params::Up>(),
        output_schema = schema_for_output::<StatusView>(),
        annotations(idempotent_hint = true, destructive_hint = false, open_world_hint = false)
    )]
    async fn up(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, params: &params::Up, progress| {
                instance::up(context, &params.options()?, progress)
            },
            views::status,
        )
        .await
    }

    #[tool(
        description = "Create a git worktree for a new branch beside the main work tree and bring its own instance up (as `berth new`): the branch `name` from HEAD (or `branch`), the files `[worktree] copy` lists copied and `link` lists symlinked from the main work tree, `[worktree] setup` run once, then `up`. Returns the worktree's path and branch and the instance's services, ports and URLs. One worktree and one instance per agent.",
        input_schema = params::schema::<params::New>(),
        output_schema = schema_for_output::<Created>(),
        annotations(idempotent_hint = false, destructive_hint = false, open_world_hint = false)
    )]
    async fn new(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let base = Arc::clone(&self.base);
        let run = move |progress: &dyn Progress| {
            let params: params::New = params::parse(arguments)?;
            let here = base.at(&params.path, None, None)?;
            instance::worktree::new(&here, &params.options()?, progress)
        };
        call::run(context, run, |created: &Created| {
            let mut text = format!(
                "worktree `{}` on branch `{}`\n",
                created.worktree.display(),
                created.branch
            );
            if let Some(instance) = &created.instance {
                text.push_str(&views::status(instance));
            }
            text
        })
        .await
    }

    #[tool(
        description = "Stop every process and container of the instance (as `berth down`). Its data and port leases stay unless `volumes` or `release` say otherwise.",
        input_schema = params::schema::<params::Down>(),
        output_schema = schema_for_output::<Stopped>(),
        annotations(idempotent_hint = true, destructive_hint = true, open_world_hint = false)
    )]
    async fn down(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, params: &params::Down, progress| {
                let options = DownOptions {
                    volumes: params.volumes,
                    release: params.release,
                };
                instance::down(context, &options, progress)
            },
            |stopped| {
                let released = if stopped.released {
                    "; ports released"
                } else {
                    ""
                };
                format!("stopped `{}`{released}\n", stopped.name)
            },
        )
        .await
    }

    #[tool(
        description = "Restart services of a running instance (all when none are named) and wait until they are ready again; returns the instance as `status` does.",
        input_schema = params::schema::<params::Restart>(),
        output_schema = schema_for_output::<StatusView>(),
        annotations(destructive_hint = false, open_world_hint = false)
    )]
    async fn restart(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, params: &params::Restart, progress| {
                instance::restart(context, &params.services, params.timeout()?, progress)
            },
            views::status,
        )
        .await
    }

    #[tool(
        description = "The instance as it is now: each service's state, ports, URL, PID or container, restarts and last message.",
        input_schema = params::schema::<params::Only>(),
        output_schema = schema_for_output::<StatusView>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn status(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, _: &params::Only, progress| instance::status(context, progress),
            views::status,
        )
        .await
    }

    #[tool(
        description = "The last lines of the instance's logs (one service's, or every service's): at most `lines` per log (default 100, at most 1000) and 256 KiB of text in all. `since: \"start\"` keeps only each service's current run. Each line is an object as `berth logs --json` prints it.",
        input_schema = params::schema::<params::Logs>(),
        output_schema = schema_for_output::<LogLines>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn logs(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(arguments, context, logs::read, logs::text).await
    }

    #[tool(
        description = "The instance's variables (BERTH_INSTANCE, BERTH_PORT_<SERVICE>, BERTH_URL_<SERVICE>, …), or with `service` exactly the environment berth gives that process service (env files, PORT, its env, PATH).",
        input_schema = params::schema::<params::Env>(),
        output_schema = schema_for_output::<BTreeMap<String, String>>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn env(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, params: &params::Env, progress| {
                instance::env(context, params.service.as_deref(), progress)
            },
            env::dotenv,
        )
        .await
    }

    #[tool(
        description = "Where a service answers: `http://127.0.0.1:PORT` for one that speaks HTTP, `127.0.0.1:PORT` for others (a database, a cache). While `berth router` runs, `url` is an HTTP service's router name (`http://SERVICE.INSTANCE.localhost:PORT`); `direct` is always the port.",
        input_schema = params::schema::<params::Address>(),
        output_schema = schema_for_output::<Url>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn url(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, params: &params::Address, progress| {
                address::url(
                    context,
                    &params.service,
                    params.port_name.as_deref(),
                    false,
                    progress,
                )
            },
            |url| format!("{}\n", url.url),
        )
        .await
    }

    #[tool(
        description = "The host port of a service (its first, or the one `port_name` names) in this instance.",
        input_schema = params::schema::<params::Address>(),
        output_schema = schema_for_output::<Port>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn port(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, params: &params::Address, progress| {
                address::port(
                    context,
                    &params.service,
                    params.port_name.as_deref(),
                    progress,
                )
            },
            |port| format!("{}\n", port.port),
        )
        .await
    }

    #[tool(
        description = "Save the instance's data (process services' data directories and its own Compose volumes) as a named snapshot. A running instance is stopped for a consistent copy and started again.",
        input_schema = params::schema::<params::SnapshotSave>(),
        output_schema = schema_for_output::<Manifest>(),
        annotations(destructive_hint = false, open_world_hint = false)
    )]
    async fn snapshot_save(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, params: &params::SnapshotSave, progress| {
                let options = SaveOptions {
                    name: params.snapshot.clone(),
                    services: params.services.clone(),
                    force: params.force,
                };
                snapshot::save(context, &options, progress)
            },
            snapshots::saved,
        )
        .await
    }

    #[tool(
        description = "Replace the instance's data with a snapshot's. A running instance needs `force`: it is stopped, restored and started again.",
        input_schema = params::schema::<params::SnapshotRestore>(),
        output_schema = schema_for_output::<Restored>(),
        annotations(destructive_hint = true, open_world_hint = false)
    )]
    async fn snapshot_restore(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, params: &params::SnapshotRestore, progress| {
                snapshot::restore(context, &params.snapshot, params.force, progress)
            },
            snapshots::restored,
        )
        .await
    }

    #[tool(
        description = "The snapshots of the project (of the instance's project, else of the directory's), with their size, date and contents.",
        input_schema = params::schema::<params::Only>(),
        output_schema = schema_for_output::<Snapshots>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn snapshot_list(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.act(
            arguments,
            context,
            |context, _: &params::Only, progress| snapshot::list(context, progress),
            |list| snapshots::list(&list.project, &list.snapshots),
        )
        .await
    }
}
