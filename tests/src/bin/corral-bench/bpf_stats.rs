//! Per-program statistics from the kernel (`kernel.bpf_stats_enabled=1` must be set by the
//! caller): one line per loaded program, `{"id","name","run_time_ns","run_cnt"}`.
pub fn print() -> Result<(), String> {
    for info in aya::programs::loaded_programs() {
        let info = info.map_err(|e| format!("reading program info: {e}"))?;
        println!(
            "{}",
            serde_json::json!({
                "id": info.id(),
                "name": info.name_as_str().unwrap_or(""),
                "run_time_ns": info.run_time().as_nanos() as u64,
                "run_cnt": info.run_count(),
            })
        );
    }
    Ok(())
}
