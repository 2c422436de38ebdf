//! The kernel/user contract checked against the compiled object: every map's key and value
//! size and bound, as the eBPF object declares them, must match this (userspace) build of
//! `agent-common`. A mismatch means the two sides would read each other's maps wrong.

use agent_common::{
    CONNECT_SEEN_MAX, COUNTER_SLOTS, ConnectSeen, EVENTS_RING_BYTES, EXES_MAX, ExePath,
    FILE_RULES_MAX, FileRuleData, FileRuleKeyScratch, NET_RULES_MAX, NetV4Data, NetV6Data,
    PRIVILEGES_MAX, PortSet, TAGS_MAX, TASKS_MAX, TaskConfig, TaskTag, UNIX_RULES_MAX, UnixRuleKey,
    names,
};

use super::EBPF_OBJECT;

/// `BPF_F_MMAPABLE` (`include/uapi/linux/bpf.h`).
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// LPM trie keys are the 4-byte prefix length followed by the data.
const fn lpm<T>() -> usize {
    4 + size_of::<T>()
}

#[test]
fn maps_in_the_object_match_the_shared_types() {
    let obj = aya_obj::Object::parse(EBPF_OBJECT)
        .unwrap_or_else(|e| panic!("expected the embedded eBPF object to parse: {e}"));
    let expected: [(&str, usize, usize, u32); 14] = [
        (names::TAGS, 4, size_of::<TaskTag>(), TAGS_MAX),
        (names::TASKS, 4, size_of::<TaskConfig>(), TASKS_MAX),
        (names::FILE_RULES, lpm::<FileRuleData>(), 4, FILE_RULES_MAX),
        (
            names::NET_V4_RULES,
            lpm::<NetV4Data>(),
            size_of::<PortSet>(),
            NET_RULES_MAX,
        ),
        (
            names::NET_V6_RULES,
            lpm::<NetV6Data>(),
            size_of::<PortSet>(),
            NET_RULES_MAX,
        ),
        (
            names::UNIX_RULES,
            size_of::<UnixRuleKey>(),
            4,
            UNIX_RULES_MAX,
        ),
        (names::COUNTERS, 4, 8, COUNTER_SLOTS),
        (names::PRIVILEGES, 4, 4, PRIVILEGES_MAX),
        (names::EXES, 4, size_of::<ExePath>(), EXES_MAX),
        (
            names::CONNECT_SEEN,
            4,
            size_of::<ConnectSeen>(),
            CONNECT_SEEN_MAX,
        ),
        ("PATH_SCRATCH", 4, size_of::<FileRuleKeyScratch>(), 1),
        ("EXE_SCRATCH", 4, size_of::<ExePath>(), 1),
        (
            names::SETTINGS,
            4,
            size_of::<agent_common::Settings>(),
            agent_common::SETTINGS_MAX,
        ),
        (
            names::OPEN_DECISIONS,
            size_of::<agent_common::OpenDecisionKey>(),
            size_of::<agent_common::OpenDecisionStamp>(),
            agent_common::OPEN_DECISIONS_MAX,
        ),
    ];
    for (name, key, value, max) in expected {
        let map = obj
            .maps
            .get(name)
            .unwrap_or_else(|| panic!("expected map {name} in the eBPF object"));
        assert_eq!(
            (
                map.key_size() as usize,
                map.value_size() as usize,
                map.max_entries()
            ),
            (key, value, max),
            "map {name}: (key, value, max_entries) in the object vs agent-common"
        );
    }
    // `TAGGED`: one byte per tgid in u64 entries, mmapable (the daemon writes single bytes
    // through its mapping); its entries are set at load from `pid_max`.
    let tagged = obj
        .maps
        .get(names::TAGGED)
        .unwrap_or_else(|| panic!("expected map {} in the eBPF object", names::TAGGED));
    assert_eq!(
        (tagged.key_size(), tagged.value_size()),
        (4, 8),
        "map TAGGED: (key, value) in the object"
    );
    assert!(
        tagged.map_flags() & BPF_F_MMAPABLE != 0,
        "expected map TAGGED created with BPF_F_MMAPABLE (flags {:#x})",
        tagged.map_flags()
    );
    assert_eq!(
        agent_common::TAGGED_HEADER_BYTES % 8,
        0,
        "expected the TAGGED header to fill whole u64 entries"
    );
    let ring = obj
        .maps
        .get(names::EVENTS)
        .unwrap_or_else(|| panic!("expected map {} in the eBPF object", names::EVENTS));
    assert_eq!(ring.max_entries(), EVENTS_RING_BYTES, "ring buffer size");
}

#[test]
fn every_hook_program_is_in_the_object() {
    let obj = aya_obj::Object::parse(EBPF_OBJECT)
        .unwrap_or_else(|e| panic!("expected the embedded eBPF object to parse: {e}"));
    for hook in super::all_hooks() {
        assert!(
            obj.programs.contains_key(hook.program),
            "expected program {} ({} {}) in the eBPF object",
            hook.program,
            hook.kind.as_str(),
            hook.hook
        );
    }
}

#[test]
fn the_embedded_object_keeps_its_btf_and_not_its_dwarf() {
    // Section names are in the object's string tables; build.rs strips DWARF (`.debug_*`, about
    // 2.7 MB of 3.7 MB) and must keep what aya loads with.
    let has = |name: &[u8]| EBPF_OBJECT.windows(name.len()).any(|w| w == name);
    for kept in [&b".BTF\0"[..], b".BTF.ext\0", b"license\0", b"maps\0"] {
        assert!(
            has(kept),
            "expected section {} in the embedded object",
            String::from_utf8_lossy(kept)
        );
    }
    assert!(
        !has(b".debug_"),
        "expected no DWARF section in the embedded object (build.rs strips them)"
    );
    assert!(
        EBPF_OBJECT.len() < 2 << 20,
        "expected the stripped object under 2 MiB, it has {} bytes",
        EBPF_OBJECT.len()
    );
}

#[test]
fn the_object_has_no_co_re_relocations() {
    // `load_object` loads the object without the kernel BTF, which aya would need to apply
    // CO-RE relocations (it skips them silently without it): struct offsets reach the programs
    // through `KernelOffsets` instead.
    let obj = aya_obj::Object::parse(EBPF_OBJECT)
        .unwrap_or_else(|e| panic!("expected the embedded eBPF object to parse: {e}"));
    assert!(
        !obj.has_btf_relocations(),
        "expected no CO-RE relocations in the eBPF object: load_object would leave them unapplied"
    );
}
