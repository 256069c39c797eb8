/*
 * Run-time choice of the micro-kernels, thread policy and aligned memory.
 *
 * The library is built for baseline x86-64; the AVX2 and AVX-512 micro-kernels are
 * compiled for their targets in their own files and used only when the CPU reports
 * the features (and the OS saves the wider registers: __builtin_cpu_supports checks
 * both through cpuid and xgetbv).
 */
#define _GNU_SOURCE /* sched_getcpu, dladdr */
#include "internal.h"

#include <dlfcn.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef __linux__
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

static void after_fork_in_child(void);

/* A region of two or more threads has run in this process; this process was forked after
 * one had (GNU OpenMP's thread pool does not survive fork: the child's next region waited
 * for the parent's threads, forever), so it runs every call on its calling thread. */
static atomic_int team_started = 0, forked_after_team = 0;

static fn_isa isa_in_use = FN_ISA_GENERIC;
static const fn_config_f32 *config_f32 = &fn_config_generic_f32;
static const fn_config_f64 *config_f64 = &fn_config_generic_f64;

int fn_cpu_supports(fn_isa isa)
{
#if defined(FN_X86_KERNELS)
    __builtin_cpu_init();
    switch (isa) {
    case FN_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
               && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FN_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FN_ISA_GENERIC:
        return 1;
    }
    return 0;
#else
    return isa == FN_ISA_GENERIC;
#endif
}

const char *fn_isa_name(fn_isa isa)
{
    switch (isa) {
    case FN_ISA_AVX512: return "avx512";
    case FN_ISA_AVX2: return "avx2";
    case FN_ISA_GENERIC: return "generic";
    }
    return "unknown";
}

fn_isa fn_init(int force)
{
    static atomic_flag at_fork = ATOMIC_FLAG_INIT;
    if (!atomic_flag_test_and_set(&at_fork)) /* once: a forked child runs no call yet */
        pthread_atfork(NULL, NULL, after_fork_in_child);
    fn_isa isa = FN_ISA_GENERIC;
    if (force >= 0) {
        if (force <= FN_ISA_AVX512 && fn_cpu_supports((fn_isa)force))
            isa = (fn_isa)force;
        else
            return isa_in_use; /* unsupported request: keep the current choice */
    } else if (fn_cpu_supports(FN_ISA_AVX512)) {
        isa = FN_ISA_AVX512;
    } else if (fn_cpu_supports(FN_ISA_AVX2)) {
        isa = FN_ISA_AVX2;
    }
    switch (isa) {
#if defined(FN_X86_KERNELS)
    case FN_ISA_AVX512:
        config_f32 = &fn_config_avx512_f32;
        config_f64 = &fn_config_avx512_f64;
        break;
    case FN_ISA_AVX2:
        config_f32 = &fn_config_avx2_f32;
        config_f64 = &fn_config_avx2_f64;
        break;
#endif
    default:
        config_f32 = &fn_config_generic_f32;
        config_f64 = &fn_config_generic_f64;
    }
    isa_in_use = isa;
    return isa;
}

fn_isa fn_isa_in_use(void) { return isa_in_use; }
const fn_config_f32 *fn_config_get_f32(void) { return config_f32; }
const fn_config_f64 *fn_config_get_f64(void) { return config_f64; }

void fn_set_num_threads(int n) { omp_set_num_threads(n > 0 ? n : 1); }
int fn_get_num_threads(void) { return fn_forked_after_team() ? 1 : omp_get_max_threads(); }

int fn_team_size(double flop) { return fn_team_for_batches(flop, FN_PARALLEL_MIN_FLOP, flop); }

int fn_team_for_batches(double batch_flop, double min_flop, double call_flop)
{
    if (batch_flop < min_flop || omp_in_parallel())
        return 1;
    return fn_team_if_warm(call_flop, omp_get_max_threads());
}

/* Still spinning this long after a region: libgomp's threads were woken in 0.5-1 us after
 * pauses of up to 3 ms and needed a futex wake-up after 10 ms and more. */
#define FN_POOL_WARM_SECONDS 2e-3
/* One core's rate, low on purpose (these kernels run at 50-110 Gflop/s here): it bounds
 * how long a call takes alone, and too long an estimate errs towards the team. */
#define FN_ONE_CORE_FLOP_RATE 2.5e10
/* A team of two saves at most half of the time alone: it pays when that is more than the
 * wake-up. */
#define FN_WAKE_PAYBACK 2.0

/* One state for the process, though libgomp keeps a pool per calling thread: with
 * several Python threads calling in, a wrong guess costs speed, never results. */
static struct {
    double team_end;  /* when the last team region ended */
    double call_end;  /* when the last call that asked for a team should end */
    double wake;      /* the pool's wake-up, averaged over the cold starts measured */
    int last_team;    /* the last answer of fn_team_if_warm */
} pool = {-1e300, -1e300, 0, 1};
static int pool_policy = FN_POOL_AUTO;

void fn_set_pool_policy(int policy)
{
#pragma omp critical(fn_pool)
    pool_policy = policy;
}

int fn_team_if_warm(double flop, int team)
{
    if (team < 2)
        return team;
    const double now = omp_get_wtime(), alone = flop / FN_ONE_CORE_FLOP_RATE;
    int use = team;
#pragma omp critical(fn_pool)
    {
        const int cold = now - pool.team_end > FN_POOL_WARM_SECONDS &&
                         now - pool.call_end > FN_POOL_WARM_SECONDS;
        if (cold && pool_policy == FN_POOL_AUTO && alone < FN_WAKE_PAYBACK * pool.wake)
            use = 1;
        pool.call_end = now + alone / use;
        pool.last_team = use;
    }
    return use;
}

double fn_pool_start(void)
{
    atomic_store_explicit(&team_started, 1, memory_order_relaxed);
    const double now = omp_get_wtime();
    double start;
#pragma omp critical(fn_pool)
    start = now - pool.team_end > FN_POOL_WARM_SECONDS ? now : -1;
    return start;
}

void fn_pool_joined(double start)
{
    if (start < 0 || omp_get_thread_num() != 1)
        return;
    const double wake = omp_get_wtime() - start;
#pragma omp critical(fn_pool)
    pool.wake = pool.wake > 0 ? (pool.wake + wake) / 2 : wake;
}

void fn_pool_end(void)
{
    const double now = omp_get_wtime();
#pragma omp critical(fn_pool)
    pool.team_end = now;
}

double fn_pool_wake_seconds(double set)
{
    double wake;
#pragma omp critical(fn_pool)
    {
        if (set >= 0)
            pool.wake = set;
        wake = pool.wake;
    }
    return wake;
}

int fn_last_team(void) { return pool.last_team; }

/* The threads of the calls now running, and the cores they share (omp_get_num_procs asks
 * the kernel for the affinity mask each time: read once, unless fn_set_cores said how
 * many). team_limit: the largest team, when a test sets one above the cores. */
static atomic_int threads_busy = 0, cores_known = 0, team_limit = 0;
static _Thread_local int last_grant = 1;
/* Threads this thread's running call gave back early (fn_team_give_back). */
static _Thread_local int given_back = 0;

/* In a forked child: the calls that ran in other threads at the fork are not there. */
static void after_fork_in_child(void)
{
    atomic_store(&threads_busy, 0);
    if (atomic_load(&team_started))
        atomic_store(&forked_after_team, 1);
}

int fn_team_allowed(void)
{
    if (atomic_load_explicit(&forked_after_team, memory_order_relaxed))
        return 0;
    atomic_store_explicit(&team_started, 1, memory_order_relaxed);
    return 1;
}

void fn_set_cores(int n)
{
    atomic_store_explicit(&cores_known, n > 0 ? n : omp_get_num_procs(), memory_order_relaxed);
}

void fn_set_team_limit(int n)
{
    atomic_store_explicit(&team_limit, n > 0 ? n : 0, memory_order_relaxed);
}

int fn_cores(void)
{
    int cores = atomic_load_explicit(&cores_known, memory_order_relaxed);
    if (cores == 0) {
        cores = omp_get_num_procs();
        atomic_store_explicit(&cores_known, cores, memory_order_relaxed);
    }
    return cores;
}

int fn_team_claim(int team, int *saved)
{
    const int cores = fn_cores();
    const int limit = atomic_load_explicit(&team_limit, memory_order_relaxed);
    if (team > (limit > 0 ? limit : cores))
        team = limit > 0 ? limit : cores;
    if (team < 2 || atomic_load_explicit(&forked_after_team, memory_order_relaxed))
        team = 1;
    int busy = atomic_load(&threads_busy), grant;
    do {
        const int left = cores - busy;
        grant = busy == 0 || team <= left ? team : (left > 1 ? left : 1);
    } while (!atomic_compare_exchange_weak(&threads_busy, &busy, busy + grant));
    *saved = given_back;
    given_back = 0;
    last_grant = grant;
    return grant;
}

void fn_team_give_back(int n)
{
    atomic_fetch_sub(&threads_busy, n);
    given_back += n;
}

void fn_team_started(int grant)
{
    const int got = omp_get_num_threads();
    if (omp_get_thread_num() == 0 && got < grant) {
        fn_team_give_back(grant - got);
        last_grant = got;
    }
}

void fn_team_release(int grant, int saved)
{
    atomic_fetch_sub(&threads_busy, grant - given_back);
    given_back = saved;
}

int fn_in_parallel(void) { return omp_in_parallel(); }
int fn_forked_after_team(void) { return atomic_load(&forked_after_team); }
int fn_threads_busy(void) { return atomic_load(&threads_busy); }

const char *fn_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "GCC " __VERSION__;
#else
    return "unknown";
#endif
}

int fn_openmp_version(void) { return _OPENMP; }

const char *fn_openmp_library(void)
{
    Dl_info info;
    if (dladdr((void *)omp_get_max_threads, &info) && info.dli_fname)
        return info.dli_fname;
    return "";
}

int64_t fn_l2_bytes(void)
{
    static atomic_llong cached = 0;
    long long bytes = atomic_load_explicit(&cached, memory_order_relaxed);
    if (bytes == 0) {
#ifdef _SC_LEVEL2_CACHE_SIZE
        bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        if (bytes < 256 * 1024 || bytes > 64 * 1024 * 1024)
            bytes = 1024 * 1024;
        atomic_store_explicit(&cached, bytes, memory_order_relaxed);
    }
    return bytes;
}

int fn_last_grant(void) { return last_grant; }

/* The allocation ledger (fn_alloc_stats): a test's check that fit allocates nothing per
 * batch and nothing sized by the data. */
static _Atomic int64_t alloc_calls, alloc_bytes;

static void count_alloc(size_t bytes)
{
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&alloc_bytes, (int64_t)bytes, memory_order_relaxed);
}

void fn_alloc_stats(int64_t *calls, int64_t *bytes)
{
    *calls = atomic_load_explicit(&alloc_calls, memory_order_relaxed);
    *bytes = atomic_load_explicit(&alloc_bytes, memory_order_relaxed);
}

void *fn_malloc(size_t bytes)
{
    count_alloc(bytes);
    return malloc(bytes);
}

void *fn_aligned_alloc_at(size_t bytes, size_t align)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = FN_ALIGN;
    count_alloc(bytes);
    if (posix_memalign(&p, align, bytes) != 0)
        return NULL;
    return p;
}

void *fn_aligned_alloc(size_t bytes) { return fn_aligned_alloc_at(bytes, FN_ALIGN); }

void fn_aligned_free(void *p) { free(p); }

/* The CPU the calling thread runs on now, plus 1 (0: unknown). */
static long cpu_now(void)
{
#ifdef __linux__
    const int cpu = sched_getcpu();
    return cpu >= 0 ? cpu + 1 : 0;
#else
    return 0;
#endif
}

/* A barrier for the `team` threads of a parallel region (including any that sit the
 * step out), for the trainers' batches: each thread raises its own count of barriers
 * passed, on a cache line of its own (lines: team lines, FN_ALIGN apart, zero at the
 * start of the region), and waits until every other count has reached it. It costs about
 * one line trip between the cores: 50-60 ns back to back here, against 275 ns for
 * libgomp's barrier, which made digits 2-3% faster on two threads. Only for a team no
 * larger than the cores (fn_cores() is set before any team starts, so every thread of a
 * team sees the same): with more threads than cores the waiting threads held the cores
 * the others needed (digits with 3 threads on 2 cores took 39 ms an epoch, against 2.5
 * with libgomp's barrier, which sleeps), so such a team waits at libgomp's.
 *
 * A thread that waits for a thread which last passed a barrier on its own CPU yields the
 * CPU at every poll (up to FN_YIELD_POLLS times), and one whose wait is long
 * (FN_SPIN_POLLS polls, about 0.5 ms of spinning) sleeps (a futex on the low half of the
 * count it waits for) until that count moves; a thread that raises its count wakes the
 * threads asleep on it (a line's third word counts them). Two threads of a team do land
 * on one CPU: NumPy's OpenBLAS keeps its threads spinning for about 0.1 s after a call,
 * and a team woken then had both threads placed on the CPU the spinner left free (Linux
 * 6.18's scheduler). Spinning, each waited for the other's time slice at every batch:
 * mnist-sized fits (3000 rows, batches of 64) took 58-66 ms against 7 alone on the cores
 * and 13 on one thread; SGD on 500 rows 62 against 4 and 6. Yielding, they take turns:
 * 19-20 ms and 9.5-11 (with train.c's team_sync). Asleep instead, the turns were as
 * quick (21-22, 15-18), but the scheduler then kept such a pair on one CPU even with the
 * other idle (a thread woken went to its waker's CPU): 16 ms for SGD's 4, in about 1
 * call of 8 with the cores free. A yielding thread stays runnable, and an idle CPU takes
 * it.
 *
 * The count's store and the sleepers' load (and the sleeper's increment and its load of
 * the count) are sequentially consistent, so a thread going to sleep either sees the new
 * count or is seen and woken; a futex whose word has moved returns at once. The release
 * and acquire order every write before a barrier before every read after it.
 * fn_set_barrier_polls (tests): the polls before sleeping (< 0: FN_SPIN_POLLS). */
#define FN_SPIN_POLLS 20000
/* A thread on the waiter's CPU takes that CPU at the waiter's first yield; so many yields
 * mean it is elsewhere after all (it moved), and the waiter sleeps rather than burn about
 * 0.5 us a yield (20,000 of them took 10 ms). */
#define FN_YIELD_POLLS 256
enum { FN_LINE_COUNT = 0, FN_LINE_CPU = 1, FN_LINE_SLEEPERS = 2 };

static atomic_llong barrier_sleeps = 0, barrier_yields = 0, spin_polls = FN_SPIN_POLLS;

void fn_barrier_waits(int64_t *sleeps, int64_t *yields)
{
    *sleeps = atomic_load_explicit(&barrier_sleeps, memory_order_relaxed);
    *yields = atomic_load_explicit(&barrier_yields, memory_order_relaxed);
}

void fn_set_barrier_polls(int64_t polls)
{
    atomic_store_explicit(&spin_polls, polls < 0 ? FN_SPIN_POLLS : polls, memory_order_relaxed);
}

static void sleep_while(atomic_long *count, long seen)
{
#if defined(__linux__) && defined(__x86_64__) /* the low half of the count: little-endian */
    atomic_long *sleepers = count + FN_LINE_SLEEPERS;
    atomic_fetch_add(sleepers, 1);
    if (atomic_load(count) == seen) {
        syscall(SYS_futex, (int *)(void *)count, FUTEX_WAIT_PRIVATE, (int)seen, NULL, NULL, 0);
        atomic_fetch_add_explicit(&barrier_sleeps, 1, memory_order_relaxed);
    }
    atomic_fetch_sub(sleepers, 1);
#else
    (void)count, (void)seen;
    sched_yield();
#endif
}

static void wake_sleepers(atomic_long *count)
{
#if defined(__linux__) && defined(__x86_64__)
    if (atomic_load(count + FN_LINE_SLEEPERS) > 0)
        syscall(SYS_futex, (int *)(void *)count, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)count;
#endif
}

void fn_team_barrier(atomic_long *lines, int t, int team)
{
    if (team > fn_cores()) {
#pragma omp barrier
        return;
    }
    const int64_t stride = FN_ALIGN / (int64_t)sizeof(atomic_long);
    const long long polls_max = atomic_load_explicit(&spin_polls, memory_order_relaxed);
    atomic_long *own = lines + t * stride;
    const long cpu = cpu_now();
    atomic_store_explicit(own + FN_LINE_CPU, cpu, memory_order_relaxed);
    const long target = atomic_load_explicit(own, memory_order_relaxed) + 1; /* only t writes it */
    atomic_store(own, target);
    wake_sleepers(own);
    for (int o = 0; o < team; o++) {
        atomic_long *count = lines + o * stride;
        for (long long polls = 0, yields = 0; o != t; polls++) {
            const long seen = atomic_load_explicit(count, memory_order_acquire);
            if (seen >= target)
                break;
            if (polls >= polls_max || yields >= FN_YIELD_POLLS) {
                sleep_while(count, seen);
            } else if (cpu && atomic_load_explicit(count + FN_LINE_CPU, memory_order_relaxed) ==
                                  cpu) {
                atomic_fetch_add_explicit(&barrier_yields, 1, memory_order_relaxed);
                sched_yield();
                yields++;
            }
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
}

/* The scratch block kept between calls (training, and the feedforward). A block of
 * megabytes from malloc is a fresh mapping each time (glibc maps a request as large as the
 * last one it unmapped anew), and every page of it faulted in again on first touch: 2,100
 * faults, about 2 ms, in each one-epoch call of the wide network (85 ms). Each block
 * carries its capacity in a header line before the memory handed out; the kept one is
 * swapped in and out atomically (no lock: a fork cannot catch one held). Blocks above
 * FN_SCRATCH_KEEP are not kept: a call that large is long enough not to notice. So a
 * process keeps at most that much between calls, the largest block of the recent ones.
 * The memory handed out starts on a page (the header has a page of its own), as the
 * small trainer's blocks need (train_small.c, group_align). Its calls had a fresh block
 * each: a one-epoch digits call in float64 on two threads spent about 80 us of its
 * 600 in page faults and in the unmapping's flush of the other CPU's TLB. */
#define FN_SCRATCH_KEEP ((size_t)64 << 20)
static _Atomic(char *) kept_block;

#define FN_SCRATCH_HEADER FN_PAGE_BYTES
static size_t scratch_capacity(const char *header) { return *(const size_t *)header; }

void *fn_scratch_take(size_t bytes)
{
    char *h = atomic_exchange(&kept_block, NULL);
    if (h && scratch_capacity(h) >= bytes)
        return h + FN_SCRATCH_HEADER;
    if (h && bytes > FN_SCRATCH_KEEP) /* this one will not be kept: leave the kept one */
        fn_aligned_free(atomic_exchange(&kept_block, h));
    else
        fn_aligned_free(h); /* too small: freed first, never both at once */
    h = fn_aligned_alloc_at(bytes + FN_SCRATCH_HEADER, FN_SCRATCH_HEADER);
    if (!h)
        return NULL;
    *(size_t *)h = bytes;
    return h + FN_SCRATCH_HEADER;
}

/* The packed path's split for tests (fn_gemm_force_share, fastnet.h): a fraction, or < 0. */
static _Atomic double forced_share = -1;

void fn_gemm_force_share(double share) { atomic_store(&forced_share, share); }

double fn_gemm_forced_share(void)
{
    return atomic_load_explicit(&forced_share, memory_order_relaxed);
}

void fn_scratch_drop(void) { fn_aligned_free(atomic_exchange(&kept_block, NULL)); }

void fn_scratch_give(void *p)
{
    if (!p)
        return;
    char *h = (char *)p - FN_SCRATCH_HEADER;
    if (scratch_capacity(h) > FN_SCRATCH_KEEP) {
        fn_aligned_free(h);
        return;
    }
    char *old = atomic_exchange(&kept_block, h);
    if (old && scratch_capacity(old) > scratch_capacity(h)) /* keep the larger */
        old = atomic_exchange(&kept_block, old);
    fn_aligned_free(old);
}
