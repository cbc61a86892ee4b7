//! The README's examples, taken from the file as they are written, so the docs stay true.
//!
//! Every ```toml block of README.md is named in [`TOML_BLOCKS`] by its first line, with
//! what the tests do with it; every ```sh and ```console block before "Tour of a stack
//! with containers" is named in [`SHELL_BLOCKS`]. A block no rule names (a new example)
//! fails `every_readme_example_has_a_rule`, and so does a rule that names no block. The
//! `berth mcp` section's ```json and ```markdown blocks are `tests/mcp.rs`'s.
//!
//! - The configuration reference's blocks are one project (the README says so): they are
//!   joined and loaded and validated by the real binary (`berth doctor`'s `project`
//!   check, which runs the whole loader and the Compose tool's `config`). They name what
//!   a real project would hold (`cwd = "api"`, `env_file = ".env"`, a Compose web): the
//!   test writes those few files beside them, and nothing else.
//! - The configuration error example (a ```console block after the reference's blocks)
//!   is what berth prints, byte for byte, for the berth.toml it shows, in a project
//!   directory shown as `/home/me/app`.
//! - The PostgreSQL recipe is complete: it is brought up for real, queried and brought
//!   down, alone and as a shared server with the per-instance block.
//! - The shell examples run in a sandbox laid out like the repository (`examples/shop`
//!   with `target/release/` holding this build's binaries, `berth` on `PATH`), each
//!   command through `bash -e -o pipefail`, in README order, and must exit 0; `cat FILE`
//!   lines write FILE from the output the README shows, and `berth init`'s output must be
//!   exactly what the README shows.
//!
//! Ports 18000-18799 (the first-day 404 test in `firstday.rs` has 18900-18999). The
//! README's examples name fixed ports; the test moves them into its range and says where:
//! the example's copy gets `port = 18000`/`18010` for 4000/4010 (and the commands'
//! `127.0.0.1:4…` become `127.0.0.1:18…`), the Procfile project's `berth up` gets
//! `--port-offset 13500` (5000 → 18500), and the recipe's `port = 5432` becomes 18432
//! (18532 for the shared form).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

const README: &str = include_str!("../README.md");

/// What a ```toml block of the README is used for.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Use {
    /// One block of the configuration reference: joined with the others and validated.
    Reference,
    /// The PostgreSQL recipe: brought up for real.
    Recipe,
    /// With `shared = true` added to the recipe: brought up as a shared server.
    SharedRecipe,
}

/// Every ```toml block of README.md, by its first line without its comment.
const TOML_BLOCKS: &[(&str, &[Use])] = &[
    ("[project]", &[Use::Reference]),
    ("[logs]", &[Use::Reference]),
    (
        "[services.db]",
        &[Use::Reference, Use::Recipe, Use::SharedRecipe],
    ),
    ("[services.db.per_instance]", &[Use::SharedRecipe]),
    ("[[env_files]]", &[Use::Reference]),
    ("[compose]", &[Use::Reference]),
];

/// Where a shell block of the README runs.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Scene {
    /// The bundled example, `examples/shop` of the sandbox's repository copy: commands
    /// that name `examples/` run from the repository, the others from the example.
    Shop,
    /// The `berth init` walk-through: a fresh `demo-procfile` directory.
    Procfile,
    /// Not run, and why.
    NotRun(&'static str),
}

/// Every ```sh and ```console block before "### Tour of a stack with containers", by
/// its first line, in README order.
const SHELL_BLOCKS: &[(&str, Scene)] = &[
    (
        "# build berth and the example's services, then bring the bundled example up",
        Scene::Shop,
    ),
    (
        "$ target/release/berth -C examples/shop up --instance 1",
        Scene::Shop,
    ),
    (
        "cargo install --path .",
        Scene::NotRun("installs berth into ~/.cargo/bin; the tests run the built binary"),
    ),
    ("$ berth --instance 0 up", Scene::Shop),
    ("$ cat Procfile", Scene::Procfile),
    ("$ berth ls", Scene::Shop),
    ("$ berth --instance 1 status", Scene::Shop),
    ("$ berth --instance 1 port api", Scene::Shop),
    ("$ berth --instance 1 env", Scene::Shop),
    ("$ berth --instance 1 logs -n 2", Scene::Shop),
    (
        "$ berth --instance 0 restart worker >/dev/null",
        Scene::Shop,
    ),
    (
        "$ cat berth.toml",
        Scene::NotRun(
            "a flood at full speed: logs::a_flooding_service_stays_within_its_cap_and_logs_shows_the_newest_lines runs it with a small cap",
        ),
    ),
    ("$ berth --instance 1 down", Scene::Shop),
    (
        "$ berth -C examples/shop --instance 1 exec api -- sh -c 'echo $PORT $BERTH_INSTANCE'",
        Scene::Shop,
    ),
    ("$ berth rm --yes", Scene::Procfile),
    ("$ berth doctor", Scene::Shop),
];

/// Commands of the shell blocks that are not run as written, and why.
const NOT_RUN_COMMANDS: &[(&str, &str)] = &[
    (
        "scripts/test-deps && cargo build --workspace && cargo nextest run --workspace",
        "it is how this test itself runs",
    ),
    (
        "cargo install --path .",
        "installs berth into ~/.cargo/bin; the tests run the built binary",
    ),
];

/// The build this test runs on stands for `cargo build --release --workspace`: this
/// prefix is dropped and the rest of the command runs.
const BUILD_PREFIX: &str = "cargo build --release --workspace && ";

/// One fenced block of README.md.
struct Block {
    lang: String,
    /// 1-based line of the opening fence.
    line: usize,
    body: String,
}

impl Block {
    fn first_line(&self) -> &str {
        self.body.lines().next().unwrap_or_default()
    }

    /// A TOML block's first line without its comment: the table it opens.
    fn table(&self) -> &str {
        let line = self.first_line();
        line.split_once(" #")
            .map_or(line, |(table, _)| table)
            .trim()
    }
}

fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_string(),
                    line: index + 1,
                    body: String::new(),
                })
            }
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some(block), _) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md has an unclosed ``` block");
    blocks
}

/// The ```toml blocks used for `purpose`, in README order.
fn toml_blocks(purpose: Use) -> Vec<String> {
    blocks(README)
        .into_iter()
        .filter(|block| block.lang == "toml")
        .filter(|block| {
            TOML_BLOCKS
                .iter()
                .any(|(table, uses)| block.table() == *table && uses.contains(&purpose))
        })
        .map(|block| block.body)
        .collect()
}

/// The shell blocks of the README up to the tour of a stack with containers.
fn shell_blocks() -> Vec<Block> {
    let end = README
        .find("\n### Tour of a stack with containers")
        .expect("the compose tour heading");
    blocks(&README[..end])
        .into_iter()
        .filter(|block| block.lang == "sh" || block.lang == "console")
        .collect()
}

/// `text` with its one `port = FROM` line set to `port = TO`.
fn on_port(text: &str, from: u16, to: u16) -> String {
    let line = format!("port = {from}");
    assert_eq!(text.matches(&line).count(), 1, "one `{line}` in:\n{text}");
    text.replacen(&line, &format!("port = {to}"), 1)
}

#[test]
fn every_readme_example_has_a_rule() {
    let all = blocks(README);
    for block in all.iter().filter(|block| block.lang == "toml") {
        let rules = TOML_BLOCKS
            .iter()
            .filter(|(table, _)| block.table() == *table)
            .count();
        assert_eq!(
            rules,
            1,
            "README.md:{}: the ```toml block starting {:?} has {rules} rules in TOML_BLOCKS (tests/readme.rs); say how it is tested",
            block.line,
            block.first_line()
        );
    }
    for (first, _) in TOML_BLOCKS {
        let found = all
            .iter()
            .filter(|block| block.lang == "toml" && block.table() == *first)
            .count();
        assert_eq!(
            found, 1,
            "TOML_BLOCKS names {first:?}, README.md has it {found} times"
        );
    }
    let shell = shell_blocks();
    for block in &shell {
        assert!(
            SHELL_BLOCKS
                .iter()
                .any(|(first, _)| *first == block.first_line()),
            "README.md:{}: the shell block starting {:?} has no rule in SHELL_BLOCKS (tests/readme.rs); say where it runs",
            block.line,
            block.first_line()
        );
    }
    let shell: Vec<&str> = shell.iter().map(Block::first_line).collect();
    let named: Vec<&str> = SHELL_BLOCKS.iter().map(|(first, _)| *first).collect();
    assert_eq!(
        shell, named,
        "SHELL_BLOCKS follows the README's shell blocks, in order"
    );
    // Other languages are not examples of berth's configuration or commands, but for two
    // that `tests/mcp.rs` uses: the `.mcp.json` example (```json), from which it starts
    // `berth mcp`, and the AGENTS.md snippet (```markdown), whose every word in backticks
    // it checks is a tool or an argument of the server.
    for block in &all {
        if block.lang == "json" {
            serde_json::from_str::<serde_json::Value>(&block.body).unwrap_or_else(|error| {
                panic!(
                    "README.md:{}: the ```json block does not parse: {error}",
                    block.line
                )
            });
        }
        assert!(
            ["toml", "sh", "console", "json", "markdown"].contains(&block.lang.as_str()),
            "README.md:{}: a ```{} block: give it a rule in tests/readme.rs",
            block.line,
            block.lang
        );
    }
}

/// The PostgreSQL recipe of the configuration reference, as root through setpriv, and
/// its shared form with a database per instance.
#[test]
fn the_postgresql_recipe_runs_as_written() {
    if support::postgres::server_bin("the_postgresql_recipe_runs_as_written").is_none() {
        return;
    }
    let [recipe] = toml_blocks(Use::Recipe)
        .try_into()
        .expect("one recipe block");
    let [server, per_instance] = toml_blocks(Use::SharedRecipe)
        .try_into()
        .expect("the recipe and its per-instance block");
    let sandbox = Sandbox::new();

    let root = sandbox.project("recipe", &on_port(&recipe, 5432, 18432));
    let status = sandbox
        .berth(&root, &["up", "--json", "--timeout", "60"])
        .success()
        .json();
    let port = port_of(&status, "db");
    assert_eq!(port, 18432);
    let query = sandbox
        .berth(&root, &["db", "shell", "--", "-tAc", "select 40 + 2"])
        .success();
    assert_eq!(query.stdout.trim(), "42");
    sandbox.berth(&root, &["down"]).success();
    assert!(is_free(port));

    // Shared: `shared = true` added to [services.db], and the per-instance block.
    let shared_config = format!(
        "{}\n{per_instance}",
        on_port(&server, 5432, 18532).replacen(
            "port = 18532\n",
            "port = 18532\nshared = true\n",
            1
        )
    );
    let shared = sandbox.project("recipe-shared", &shared_config);
    sandbox.berth(&shared, &["up", "--timeout", "60"]).success();
    let databases = sandbox
        .berth(
            &shared,
            &[
                "db",
                "shell",
                "--",
                "-tAc",
                "select datname from pg_database",
            ],
        )
        .success()
        .stdout;
    assert!(
        databases.lines().any(|line| line.trim() == "app_0"),
        "{databases}"
    );
    sandbox.berth(&shared, &["down"]).success();
}

/// The configuration error the README shows: `cat berth.toml`, then `berth up` and what
/// it prints on stderr, run as written with the project's directory shown as the README's.
#[test]
fn the_configuration_error_example_is_what_berth_prints() {
    let [example] = blocks(README)
        .into_iter()
        .filter(|block| block.lang == "console" && block.body.contains("\n$ berth up\nerror: "))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|blocks: Vec<Block>| {
            panic!("one configuration error example, found {}", blocks.len())
        });
    let (config, expected) = example
        .body
        .strip_prefix("$ cat berth.toml\n")
        .and_then(|body| body.split_once("$ berth up\n"))
        .expect("the example shows berth.toml, then `berth up`");
    let sandbox = Sandbox::new();
    let root = sandbox.project("app", config);
    let run = sandbox.berth(&root, &["up"]).code(2);
    let shown = run
        .stderr
        .replace(&root.display().to_string(), "/home/me/app");
    assert_eq!(
        shown, expected,
        "README.md:{}: the example is not what berth prints",
        example.line
    );
}

/// Every block of the configuration reference, taken from README.md as written, makes one
/// project (api, db, the Compose web, logs, an env file) that berth loads without error.
/// What the blocks name and a real project would hold is written beside them: the `api`
/// directory (`cwd`), `.env` (`env_file` and `[[env_files]]`), and the two Compose files
/// `[compose]` lists, with the `pgdata` volume it shares.
#[test]
fn the_configuration_reference_loads_as_written() {
    let blocks = toml_blocks(Use::Reference);
    assert_eq!(blocks.len(), 5, "{blocks:?}");
    let compose = "services:\n  web:\n    image: busybox\n    ports: [\"8080:80\"]\n    volumes: [pgdata:/data]\nvolumes:\n  pgdata:\n";
    let sandbox = Sandbox::new();
    let root = sandbox.project_files(
        "shop",
        &[
            ("berth.toml", &blocks.join("\n")),
            (".env", "API_URL=http://localhost:3000\n"),
            ("compose.yml", compose),
            (
                "compose.dev.yml",
                "services:\n  web:\n    environment:\n      DEBUG: \"1\"\n",
            ),
        ],
    );
    std::fs::create_dir(root.join("api")).unwrap();
    let doctor = sandbox.berth(&root, &["doctor", "--json"]);
    let checks = doctor.json();
    let project = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["check"] == "project")
        .unwrap_or_else(|| panic!("no project check: {checks}"));
    assert_eq!(project["status"], "ok", "{project}\n{}", doctor.stderr);
}

/// The sandbox laid out as the README's commands expect.
struct Tour {
    sandbox: Sandbox,
    /// The repository copy: `examples/shop` and `target/release/`.
    repo: PathBuf,
    /// A directory holding `berth`, first on `PATH`.
    bin: PathBuf,
    procfile: PathBuf,
}

impl Tour {
    fn new() -> Self {
        let sandbox = Sandbox::new();
        let base = sandbox.dir.path().canonicalize().unwrap();
        let repo = base.join("repo");
        let release = repo.join("target/release");
        let bin = base.join("bin");
        let shop = repo.join("examples/shop");
        for dir in [&release, &bin, &shop] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::os::unix::fs::symlink(berth_exe(), release.join("berth")).unwrap();
        std::os::unix::fs::symlink(berth_exe(), bin.join("berth")).unwrap();
        for program in ["shop-api", "shop-stock", "shop-worker"] {
            std::os::unix::fs::symlink(workspace_bin(program), release.join(program)).unwrap();
        }
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop/berth.toml"),
        )
        .unwrap();
        let example = on_port(&on_port(&example, 4000, 18000), 4010, 18010);
        std::fs::write(shop.join("berth.toml"), example).unwrap();
        let procfile = base.join("demo-procfile");
        std::fs::create_dir(&procfile).unwrap();
        Tour {
            sandbox,
            repo,
            bin,
            procfile,
        }
    }

    /// Runs one README command in `scene`; its output.
    fn run(&self, scene: Scene, command: &str) -> Run {
        let (dir, command) = match scene {
            Scene::Shop if command.contains("examples/") => {
                (self.repo.clone(), command.to_string())
            }
            Scene::Shop => (
                self.repo.join("examples/shop"),
                command.replace("127.0.0.1:4", "127.0.0.1:18"),
            ),
            Scene::Procfile if command == "berth up" => (
                self.procfile.clone(),
                "berth up --port-offset 13500".to_string(),
            ),
            Scene::Procfile => (self.procfile.clone(), command.to_string()),
            Scene::NotRun(_) => unreachable!("not run"),
        };
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &command])
            .current_dir(&dir)
            .env("PATH", path)
            .env("BERTH_HOME", self.sandbox.home())
            .env("NO_COLOR", "1")
            .env_remove("BERTH_INSTANCE")
            .env_remove("BERTH_COMPOSE")
            .output()
            .expect("run bash");
        let run = Run::from_output(output);
        assert_eq!(
            run.code,
            0,
            "`{command}` in {} exited {}\nstdout:\n{}\nstderr:\n{}",
            dir.display(),
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }
}

/// The commands of one shell block, each with the output the README shows for it.
fn commands(block: &Block) -> Vec<(String, Vec<String>)> {
    let mut commands: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.body.lines() {
        if block.lang == "sh" {
            if !line.trim().is_empty() && !line.starts_with('#') {
                commands.push((line.to_string(), Vec::new()));
            }
        } else if let Some(command) = line.strip_prefix("$ ") {
            commands.push((command.to_string(), Vec::new()));
        } else if let Some((_, output)) = commands.last_mut() {
            output.push(line.to_string());
        }
    }
    commands
}

/// The tour's commands, in README order: the two commands, the second instance and the
/// tour on the bundled example, and the `berth init` walk-through on its Procfile project,
/// each exiting 0; `berth init` prints what the README shows.
#[test]
fn the_tour_runs_as_written() {
    let tour = Tour::new();
    let blocks = shell_blocks();
    for block in &blocks {
        let scene = SHELL_BLOCKS
            .iter()
            .find(|(first, _)| *first == block.first_line())
            .map(|(_, scene)| *scene)
            .unwrap_or_else(|| panic!("no rule for {:?}", block.first_line()));
        if let Scene::NotRun(_) = scene {
            continue;
        }
        for (command, shown) in commands(block) {
            if NOT_RUN_COMMANDS.iter().any(|(text, _)| *text == command) {
                continue;
            }
            if let Some(file) = command.strip_prefix("cat ") {
                // The README shows the file: the test writes what it shows.
                let dir = match scene {
                    Scene::Procfile => &tour.procfile,
                    _ => panic!("`{command}` outside the Procfile project"),
                };
                std::fs::write(dir.join(file), shown.join("\n") + "\n").unwrap();
                continue;
            }
            let command = command.strip_prefix(BUILD_PREFIX).unwrap_or(&command);
            eprintln!("$ {command}");
            let run = tour.run(scene, command);
            if command == "berth init" {
                let end = shown
                    .iter()
                    .position(|line| line.starts_with("wrote `"))
                    .expect("the README shows where init wrote");
                assert_eq!(
                    run.stdout,
                    shown[..end].join("\n") + "\n",
                    "`berth init` prints what the README shows"
                );
                assert_eq!(
                    run.stderr,
                    format!(
                        "wrote `{}/berth.toml`; `berth up` starts it\n",
                        tour.procfile.display()
                    )
                );
            }
        }
    }
    // Instance 0 is still up, answering on the port the test moved it to.
    let (code, body) = http_get(18000, "/items/widget").expect("the api answers");
    assert_eq!(code, 200, "{body}");
    tour.run(Scene::Shop, "berth --instance 0 down --release");
    assert!(is_free(18000) && is_free(18010));
}
