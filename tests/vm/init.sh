#!/bin/sh
# PID 1 of Corral's test VMs (packed as /init by `cargo xtask test`, see xtask/src/initramfs.rs).
# Runs the `vm` test executable of corral-tests with any arguments the kernel passed us (what
# followed `--` on its command line), prints CORRAL_VM_EXIT=<rc> and powers off. With
# `corral.shell=1` on the kernel command line (`cargo xtask vm-shell`) it gives a shell instead.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t bpf bpf /sys/fs/bpf
mount -t securityfs securityfs /sys/kernel/security
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up

# Modules the tests need that Debian builds as modules (xtask/src/vm_modules.rs), in dependency
# order, for the kernel we booted; a module that does not load fails the suite (xtask/src/vm.rs).
modules=/lib/modules/$(uname -r)
if [ -f "$modules/load-order" ]; then
    while read -r name; do
        insmod "$modules/$name.ko" || echo "CORRAL_VM_MODULE_FAILED=$name"
    done <"$modules/load-order"
else
    echo "CORRAL_VM_MODULE_FAILED=none packed for $(uname -r)"
fi
hostname corral-vm

cat >/etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >/etc/group <<'EOF'
root:x:0:
nogroup:x:65534:
EOF

echo "CORRAL_VM_KERNEL=$(uname -r)"
echo "CORRAL_VM_LSM=$(cat /sys/kernel/security/lsm)"

if grep -q 'corral\.shell=1' /proc/cmdline; then
    echo "corral vm-shell: binaries in /bin, policies in /policies; exit to power off"
    setsid cttyhack sh -l
    poweroff -f
fi

cd /tmp
CORRAL_BIN=/bin/corral CORRAL_PROBE=/bin/corral-probe CORRAL_POLICIES=/policies RUST_BACKTRACE=1 \
    /bin/vm-tests --test-threads=1 "$@"
rc=$?
echo "CORRAL_VM_EXIT=$rc"
poweroff -f
