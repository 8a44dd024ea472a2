//! `edge-gateway`: a proximity lab's LabEdge gateway. See `labedge_edge_gateway` for what it does.

fn main() -> std::process::ExitCode {
    labedge_edge_gateway::cli::main()
}
