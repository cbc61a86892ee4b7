//! The README's recipes, taken from the file as they are written, so the docs stay true.

mod support;

use support::*;

/// The ```toml block of README.md that starts with `first_line`.
fn readme_block(first_line: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find(&format!("```toml\n{first_line}"))
        .unwrap_or_else(|| panic!("no ```toml block starting with {first_line:?} in README.md"))
        + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    readme[start..end].to_string()
}

/// The PostgreSQL recipe of the configuration reference, as root through setpriv, and
/// its shared form with a database per instance.
#[test]
fn the_postgresql_recipe_runs_as_written() {
    if support::postgres::server_bin("the_postgresql_recipe_runs_as_written").is_none() {
        return;
    }
    let recipe = readme_block("[services.db]                  # PostgreSQL from Debian's packages");
    let per_instance = readme_block("[services.db.per_instance]");
    let sandbox = Sandbox::new();

    let root = sandbox.project("recipe", &recipe);
    let status = sandbox
        .berth(&root, &["up", "--json", "--timeout", "60"])
        .success()
        .json();
    let port = port_of(&status, "db");
    let query = sandbox
        .berth(&root, &["db", "shell", "--", "-tAc", "select 40 + 2"])
        .success();
    assert_eq!(query.stdout.trim(), "42");
    sandbox.berth(&root, &["down"]).success();
    assert!(is_free(port));

    // Shared: `shared = true` added to [services.db], and the per-instance block.
    let shared_config = format!(
        "{}\n{per_instance}",
        recipe.replacen("port = 5432\n", "port = 5432\nshared = true\n", 1)
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

/// Every block of the configuration reference, taken from README.md as written, makes one
/// project (api, db, the Compose web, logs, an env file) that berth loads without error.
/// The per-instance block needs `shared = true` and runs in the recipe test above.
#[test]
fn the_configuration_reference_loads_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("## Configuration reference")
        .expect("the reference");
    let end = start + readme[start..].find("\n## ").expect("the next section");
    let blocks: Vec<&str> = readme[start..end]
        .split("```toml\n")
        .skip(1)
        .map(|rest| &rest[..rest.find("```").expect("the block ends")])
        .filter(|block| !block.starts_with("[services.db.per_instance]"))
        .collect();
    assert!(blocks.len() >= 5, "{} blocks", blocks.len());
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
