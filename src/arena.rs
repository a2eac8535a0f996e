//! Start-up allocator: the first small allocations of a run are served from
//! a fixed 4 KiB static arena; everything else, and everything once the
//! arena is used up, goes to the C library's allocator.
//!
//! Why: every container start pays envinit's start-up, and under musl the
//! first allocation of each size class costs hundreds of instructions
//! (mallocng sets up its metadata): a dozen small allocations (arguments,
//! settings, the child's argv) were a third of the start-up. A bump pointer
//! costs a few instructions.
//!
//! Promises: memory use is bounded (the arena never grows, and freed arena
//! blocks are simply not reused); allocations larger than [`SMALL`] bytes or
//! aligned above 16 never touch it; it is correct with threads (one atomic
//! bump), although envinit has none.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

const ARENA_SIZE: usize = 4096;
/// Largest request served from the arena.
pub const SMALL: usize = 512;
const ALIGN: usize = 16;

#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);

// SAFETY: disjoint parts of the arena are handed out by an atomic bump, so
// no two owners ever share bytes.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The global allocator of the envinit binary.
pub struct StartupArena;

fn in_arena(ptr: *mut u8) -> bool {
    let start = ARENA.0.get() as usize;
    (start..start + ARENA_SIZE).contains(&(ptr as usize))
}

fn bump(layout: Layout) -> Option<*mut u8> {
    if layout.size() > SMALL || layout.align() > ALIGN {
        return None;
    }
    // Rounded up with a mask (ALIGN is a power of two): next_multiple_of
    // compiles to a branchy remainder in some inlining contexts, paid on
    // every start-up allocation.
    let size = (layout.size().max(1) + (ALIGN - 1)) & !(ALIGN - 1);
    let mut offset = NEXT.load(Ordering::Relaxed);
    loop {
        let end = offset.checked_add(size).filter(|end| *end <= ARENA_SIZE)?;
        match NEXT.compare_exchange_weak(offset, end, Ordering::Relaxed, Ordering::Relaxed) {
            // SAFETY: offset + size <= ARENA_SIZE, so the pointer stays in
            // the arena; the range [offset, end) now belongs to the caller.
            Ok(_) => return Some(unsafe { ARENA.0.get().cast::<u8>().add(offset) }),
            Err(now) => offset = now,
        }
    }
}

// SAFETY: arena blocks are 16-aligned, at least as large as asked, never
// handed out twice; everything else is the system allocator's contract.
unsafe impl GlobalAlloc for StartupArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: forwarded with the caller's layout.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !in_arena(ptr) {
            // SAFETY: not an arena block, so it came from System.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_arena(ptr) {
            // SAFETY: not an arena block, so it came from System.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees new_size is valid for this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a fresh block of new_size bytes.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and distinct.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_distinct_and_bounded() {
        let a = StartupArena;
        let layout = Layout::from_size_align(24, 8).unwrap();
        let mut seen = Vec::new();
        // More than the arena holds: the rest must come from System.
        for i in 0..400 {
            // SAFETY: valid layout; freed below.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % 8, 0);
            // SAFETY: 24 bytes are ours.
            unsafe { p.write_bytes(i as u8, 24) };
            seen.push(p);
        }
        for (i, p) in seen.iter().enumerate() {
            // SAFETY: reading our own 24 bytes.
            assert_eq!(unsafe { **p }, i as u8, "block {i} was overwritten");
        }
        assert!(seen.iter().any(|p| !in_arena(*p)), "the arena must run out");
        for p in seen {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(p, layout) };
        }
    }

    #[test]
    fn large_or_overaligned_requests_skip_the_arena() {
        let a = StartupArena;
        for layout in [
            Layout::from_size_align(SMALL + 1, 8).unwrap(),
            Layout::from_size_align(8, 64).unwrap(),
        ] {
            // SAFETY: valid layout; freed below.
            let p = unsafe { a.alloc(layout) };
            assert!(!in_arena(p));
            assert_eq!(p as usize % layout.align(), 0);
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(p, layout) };
        }
    }

    #[test]
    fn realloc_keeps_the_contents() {
        let a = StartupArena;
        let layout = Layout::from_size_align(16, 8).unwrap();
        // SAFETY: valid layouts; each pointer used only while it is live.
        unsafe {
            let p = a.alloc(layout);
            p.copy_from_nonoverlapping(b"0123456789abcdef".as_ptr(), 16);
            let q = a.realloc(p, layout, 4000);
            assert_eq!(std::slice::from_raw_parts(q, 16), b"0123456789abcdef");
            a.dealloc(q, Layout::from_size_align(4000, 8).unwrap());
        }
    }
}
