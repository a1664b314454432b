#ifndef DECKHAND_SYSTEM_H
#define DECKHAND_SYSTEM_H

#include <sys/types.h>

/// Spawns `path` in a new process group (its pid is the group id), with all
/// signals at their default disposition and none blocked, stdin/stdout/stderr
/// on the given descriptors, every other descriptor closed, and the working
/// directory `cwd` (NULL: unchanged).
/// Returns 0 and sets *pid, or an errno value.
int deckhand_spawn(const char *path, char *const argv[], char *const envp[],
                   int stdin_fd, int stdout_fd, int stderr_fd, const char *cwd,
                   pid_t *pid);

/// What an isolated plugin gets (see deckhand_spawn_isolated).
struct deckhand_isolation {
  int new_network;         /* a network namespace with only loopback, up */
  int new_pid;             /* a pid namespace: the plugin is its pid 1 */
  int new_mount;           /* a private mount namespace */
  const char *const *readonly_paths; /* NULL-terminated; bind-mounted read-only */
  int uid;                 /* -1: unchanged */
  int gid;                 /* -1: unchanged */
  int no_new_privileges;
  int cgroup_procs_fd;     /* -1: none; else an open cgroup.procs the child
                              joins first, before it can start anything */
};

enum {
  DECKHAND_STEP_SETUP = 1,
  DECKHAND_STEP_NETWORK = 2,
  DECKHAND_STEP_PID = 3,
  DECKHAND_STEP_MOUNT = 4,
  DECKHAND_STEP_USER = 5,
  DECKHAND_STEP_EXEC = 6,
};

/// Like deckhand_spawn, through fork and execve, with namespaces, another
/// user and no_new_privs. Returns 0 and sets *pid, or an errno value and
/// *failed_step (a DECKHAND_STEP_ value).
int deckhand_spawn_isolated(const char *path, char *const argv[], char *const envp[], int stdin_fd,
                            int stdout_fd, int stderr_fd, const char *cwd,
                            const struct deckhand_isolation *iso, int *failed_step, pid_t *pid);

/// pidfd_open(2): a descriptor that becomes readable when `pid` exits, or -1.
int deckhand_pidfd_open(pid_t pid);

/// Decodes a waitpid status: returns 1 and sets *code if the process exited,
/// 2 and sets *code to the signal if it was killed, 0 otherwise.
int deckhand_decode_wait_status(int status, int *code);

/// Tries to connect to a unix stream socket. Returns 0 when a listener
/// accepted, or an errno value (ENOENT, ECONNREFUSED, ENAMETOOLONG...).
int deckhand_unix_probe(const char *path);

/// A connected unix stream socket (close-on-exec), or -errno.
int deckhand_unix_connect(const char *path);

/// A listening unix stream socket bound to `path`, or -errno.
int deckhand_unix_listen(const char *path, int backlog);

/// accept4(2) with close-on-exec set atomically (a plugin spawned by another
/// thread in between must not inherit the connection): the new descriptor,
/// or -errno.
int deckhand_accept(int listener);

/// prlimit(2) on another process: soft and hard limit to `value`; 0 or errno.
int deckhand_set_rlimit(pid_t pid, int resource, unsigned long long value);
int deckhand_rlimit_nofile(void);
int deckhand_rlimit_as(void);
int deckhand_rlimit_nproc(void);

/// Sets SO_RCVTIMEO and SO_SNDTIMEO; 0 or an errno value.
int deckhand_set_timeouts(int fd, long long microseconds);

/// Creates a pipe whose both ends are close-on-exec. Returns 0 or errno.
int deckhand_pipe_cloexec(int fds[2]);

/// The start time of a process, in clock ticks since boot (field 22 of
/// /proc/PID/stat), or 0 if it is gone.
unsigned long long deckhand_process_start_time(pid_t pid);



/// Fills `out` with the pids of all descendants of `pid` (children,
/// grandchildren...), found through the parent pid in /proc/N/stat, and
/// returns how many (at most `max`).
int deckhand_descendants(pid_t pid, pid_t *out, int max);

/// Fills `out` with the pids of processes whose environment holds the exact
/// entry `entry` ("KEY=VALUE"), found through /proc/N/environ (readable for
/// root or the same user), and returns how many (at most `max`).
int deckhand_processes_with_env(const char *entry, pid_t *out, int max);

/// 1 if `pid` is `ancestor` or one of its descendants (following parent
/// pids in /proc/N/stat, at most 256 levels), 0 otherwise.
int deckhand_is_descendant(pid_t pid, pid_t ancestor);

/// The pid of the process that listens on the unix socket `path` (its
/// SO_PEERCRED after a connect), or -1 if none answers.
pid_t deckhand_unix_peer_pid(const char *path);

/// Opens a pseudo-terminal pair (both close-on-exec; the child gets the
/// replica as its stdin, stdout and stderr). Returns 0 or errno.
int deckhand_open_pty(int *primary, int *replica, unsigned short rows, unsigned short columns);

/// Sets a terminal's window size (TIOCSWINSZ). Returns 0 or errno.
int deckhand_set_window(int fd, unsigned short rows, unsigned short columns);

/// Reads a terminal's window size (TIOCGWINSZ). Returns 0 or errno.
int deckhand_get_window(int fd, unsigned short *rows, unsigned short *columns);
/// sched_setaffinity(2) for thread (or process) `tid` (0: the caller) to
/// the one CPU `cpu`. Returns 0 or an errno value.
int deckhand_pin_to_cpu(pid_t tid, int cpu);

#endif
