//! `api`: the LabEdge cloud API. See `labedge_api` for what it does.

fn main() -> std::process::ExitCode {
    labedge_api::cli::main()
}
