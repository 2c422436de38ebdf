//! Builds the eBPF object from `agent-ebpf` (bpfel target, nightly, bpf-linker) with aya-build
//! and leaves it in `OUT_DIR/agent-ebpf`, where `loader` embeds it, without its DWARF.
use std::{fs, path::Path};

use anyhow::{Context as _, anyhow};
use object::build::elf::SectionData;

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "agent-ebpf")
        .ok_or_else(|| anyhow!("package agent-ebpf not found in the workspace"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("agent-ebpf manifest has no parent directory"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )?;
    let out_dir = std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?;
    strip_dwarf(&Path::new(&out_dir).join(ebpf.name.as_str()))
}

/// Removes the DWARF sections (`.debug_*`) and their relocations from the eBPF object at `path`,
/// in place. bpf-linker only derives BTF from DWARF (aya-build asks for `-Cdebuginfo=2` and
/// `--btf`); aya loads with `.BTF` and `.BTF.ext` (CO-RE relocations, function and line info)
/// and ignores DWARF, yet its parser collects every section's relocations, DWARF's included.
/// Embedded, the DWARF was 2.7 MB of the 3.7 MB object: pages and heap the daemon touched at
/// its resident-size peak (while loading) for nothing.
fn strip_dwarf(path: &Path) -> anyhow::Result<()> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut object = object::build::elf::Builder::read(data.as_slice())
        .with_context(|| format!("parsing the ELF object {}", path.display()))?;
    for section in &mut object.sections {
        let name: &[u8] = &section.name;
        if [&b".debug_"[..], b".rel.debug_", b".rela.debug_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            section.delete = true;
        }
    }
    if !object
        .sections
        .iter()
        .any(|s| matches!(s.data, SectionData::SectionString))
    {
        // LLVM names sections from the symbol string table (`.strtab`); the writer wants a
        // section name table of its own.
        let names = object.sections.add();
        names.name = b".shstrtab"[..].into();
        names.sh_type = object::elf::SHT_STRTAB;
        names.sh_addralign = 1;
        names.data = SectionData::SectionString;
    }
    let mut stripped = Vec::new();
    object
        .write(&mut stripped)
        .with_context(|| format!("writing {} without DWARF", path.display()))?;
    fs::write(path, stripped).with_context(|| format!("writing {}", path.display()))
}
