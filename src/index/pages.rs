//! Huge pages for the big in-memory buffers the searches read at random rows.
//!
//! The exported dense graph's vectors ([`super::graph`]) are one allocation of hundreds of MiB,
//! and a graph search reads rows scattered over all of it: with 4 KiB pages nearly every row
//! read costs a TLB miss and a page walk, even when the row itself is in cache (this machine's
//! L3 holds all of them). Backed by 2 MiB pages, the dense search at 100k × 768 went from 0.49
//! to 0.41 ms a query (docs/PERFORMANCE.md §19). The matrix spaces' scan arena and int8
//! sketches showed no measurable change with it (their scans are sequential), so they do not
//! use it.

/// Asks the kernel to back `v`'s allocated capacity with 2 MiB pages. Linux only, and only
/// where transparent huge pages are enabled for `madvise`d memory (the common default); call
/// it right after reserving and before filling, so the pages are faulted in huge. A hint: it
/// never changes `v`'s contents, and where it does nothing the buffer is merely slower.
/// `TASKDB_HUGE_PAGES=0` in the environment turns it off (for a system where huge pages
/// cost more than they give, and for A/B measurements).
pub(crate) fn huge_pages<T>(v: &mut Vec<T>) {
    #[cfg(target_os = "linux")]
    if std::env::var_os("TASKDB_HUGE_PAGES").is_none_or(|x| x != "0") {
        const HUGE: usize = 2 << 20;
        let start = v.as_mut_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<T>();
        let (a, b) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if b > a {
            // SAFETY: [a, b) lies inside `v`'s allocation, which this function neither frees
            // nor moves; MADV_HUGEPAGE changes how pages are backed, never their contents.
            unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}
