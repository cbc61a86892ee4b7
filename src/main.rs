//! The `berth` binary: parse arguments, run, map the error to an exit code.

fn main() {
    let cli = <berth::cli::Cli as clap::Parser>::parse();
    let printer = berth::output::Printer::new(cli.global.json, cli.global.quiet);
    if let Err(error) = berth::run(cli, &printer) {
        printer.error(&error.render(printer.colour()));
        drop(printer);
        std::process::exit(error.exit_status());
    }
}
