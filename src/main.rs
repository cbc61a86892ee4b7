//! The `berth` binary: parse arguments, run, map the error to an exit code.

fn main() {
    let cli = <berth::cli::Cli as clap::Parser>::parse();
    if let Err(error) = berth::run(cli) {
        eprint!("{}", error.render());
        std::process::exit(error.exit_code() as i32);
    }
}
