//! Profiles of a run with `perf` (`LABEDGE_BENCH_PERF=<dir>`).

use super::*;

impl Bench {
    /// With `LABEDGE_BENCH_PERF=<dir>`, profiles a run: the gateway alone (`perf record -e cpu-clock`
    /// with DWARF call graphs, `<dir>/<name>.perf.data`) and the whole machine (frame-pointer call
    /// graphs, `<dir>/<name>.sys.perf.data`), for docs/performance.md. The figures of a profiled run
    /// are lower: do not report them.
    pub(crate) fn perf_start(&self, name: &str) -> Vec<Proc> {
        let pid = self.gateway.as_ref().map(Proc::pid);
        self.perf_start_for(name, pid)
    }

    pub(crate) fn perf_start_for(&self, name: &str, pid: Option<u32>) -> Vec<Proc> {
        let Some(dir) = std::env::var_os("LABEDGE_BENCH_PERF") else {
            return Vec::new();
        };
        let dir = PathBuf::from(dir);
        let mut started = Vec::new();
        let system = dir.join(format!("{name}.sys.perf.data")).display().to_string();
        let mut runs: Vec<(String, Vec<String>)> = vec![(
            format!("perf-{name}-system"),
            ["record", "-e", "cpu-clock", "-F", "99", "-g", "-a", "-o", &system]
                .map(str::to_owned)
                .to_vec(),
        )];
        if let Some(pid) = pid {
            let out = dir.join(format!("{name}.perf.data")).display().to_string();
            let pid = pid.to_string();
            runs.push((
                format!("perf-{name}"),
                [
                    "record",
                    "-e",
                    "cpu-clock",
                    "-F",
                    "99",
                    "--call-graph",
                    "dwarf,16384",
                    "-p",
                    &pid,
                    "-o",
                    &out,
                ]
                .map(str::to_owned)
                .to_vec(),
            ));
        }
        for (label, args) in runs {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Ok(proc) = Proc::start(&label, Path::new("perf"), &args, &[], &self.work, None) {
                started.push(proc);
            }
        }
        started
    }

    pub(crate) async fn perf_stop(perf: Vec<Proc>) {
        for mut proc in perf {
            proc.stop_with("INT", Duration::from_secs(60)).await;
        }
    }
}
