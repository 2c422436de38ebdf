#!/bin/sh
# PID 1 of the bench VM (packed as /init by `cargo xtask bench`, see xtask/src/bench/vm.rs).
# Same set-up as init.sh, then runs `xtask bench --inside-vm` with the arguments the kernel passed
# us (what followed `--` on its command line): it prints CORRAL_BENCH <json> records. Prints
# CORRAL_VM_EXIT=<rc> and powers off.
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

cd /tmp
/bin/xtask bench --inside-vm "$@"
rc=$?
echo "CORRAL_VM_EXIT=$rc"
poweroff -f
