//! A ring-buffer record read in place: the fields of `Event`'s head at their `offset_of!`
//! offsets in the record's bytes, and the path bytes the record carries. Nothing is copied into
//! a (4 KiB, zeroed) `Event`.

use std::mem::offset_of;

use agent_common::{COMM_LEN, EVENT_HEAD_SIZE, EVENT_SIZE, Event};

use super::DecodeError;

/// One record, borrowed from the ring buffer (or any byte slice shaped like one).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// `EVENT_HEAD_SIZE..=EVENT_SIZE` bytes: the head, then the path bytes of its size class.
    bytes: &'a [u8],
}

macro_rules! u32_fields {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(&self) -> u32 {
                self.u32_at(offset_of!(Event, $name))
            }
        )*
    };
}

impl<'a> Record<'a> {
    /// Checks the size of a record: a head, and at most `Event`'s path bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if (EVENT_HEAD_SIZE..=EVENT_SIZE).contains(&bytes.len()) {
            Ok(Self { bytes })
        } else {
            Err(DecodeError::Size { len: bytes.len() })
        }
    }

    /// The record of a whole `Event` (tests, the pipeline bench): its head and `path_bytes`
    /// path bytes (clamped to `PATH_MAX`).
    #[must_use]
    pub fn of_event(ev: &'a Event, path_bytes: usize) -> Self {
        let all = event_bytes(ev);
        Self {
            bytes: &all[..(EVENT_HEAD_SIZE + path_bytes).min(EVENT_SIZE)],
        }
    }

    /// The record's bytes.
    #[must_use]
    pub const fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = &self.bytes[at..at + 4];
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    /// `bpf_ktime_get_boot_ns` at the decision.
    #[must_use]
    pub fn time_ns(&self) -> u64 {
        let at = offset_of!(Event, time_ns);
        let b = &self.bytes[at..at + 8];
        u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    u32_fields!(
        op, decision, mode, task_id, pid, tgid, ppid, uid, gid, access, family, proto, port,
        path_len, reason, backend, target_pid, instance,
    );

    /// Negative errno when the kernel could not resolve the path, else 0.
    #[must_use]
    pub fn path_error(&self) -> i32 {
        self.u32_at(offset_of!(Event, path_error)) as i32
    }

    /// `current->comm`, NUL padded.
    #[must_use]
    pub fn comm(&self) -> [u8; COMM_LEN] {
        let at = offset_of!(Event, comm);
        let mut comm = [0; COMM_LEN];
        comm.copy_from_slice(&self.bytes[at..at + COMM_LEN]);
        comm
    }

    /// Connect: the destination address, network byte order.
    #[must_use]
    pub fn addr(&self) -> [u8; 16] {
        let at = offset_of!(Event, addr);
        let mut addr = [0; 16];
        addr.copy_from_slice(&self.bytes[at..at + 16]);
        addr
    }

    /// The target's path bytes: `path_len` of them, never past the bytes the record carries.
    #[must_use]
    pub fn path(&self) -> &'a [u8] {
        let carried = &self.bytes[EVENT_HEAD_SIZE..];
        &carried[..(self.path_len() as usize).min(carried.len())]
    }
}

/// The bytes of a whole `Event`.
#[must_use]
pub fn event_bytes(ev: &Event) -> &[u8] {
    // SAFETY: `Event` is `repr(C)`, plain integers and byte arrays with explicit padding fields
    // (agent-common's rules), so all of its `EVENT_SIZE` bytes are initialised; the slice
    // borrows `ev`.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(ev).cast::<u8>(), EVENT_SIZE) }
}
