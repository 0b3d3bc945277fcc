//! Empty library target; the XDP program is the `proxy-ebpf` binary.
#![no_std]
