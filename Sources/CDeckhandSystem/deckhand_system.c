#define _GNU_SOURCE
#include "deckhand_system.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int deckhand_spawn(const char *path, char *const argv[], char *const envp[],
                   int stdin_fd, int stdout_fd, int stderr_fd, const char *cwd,
                   pid_t *pid) {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  int rc = posix_spawnattr_init(&attr);
  if (rc != 0) return rc;
  rc = posix_spawn_file_actions_init(&actions);
  if (rc != 0) {
    posix_spawnattr_destroy(&attr);
    return rc;
  }
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_USEVFORK);
  posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
  /* The plugin gets stdin, stdout and stderr, and none of the host's other
     descriptors (sockets, files being written) even if they lack CLOEXEC. */
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&actions, cwd);
  rc = posix_spawn(pid, path, &actions, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

/* The child's side of deckhand_spawn_isolated: only system calls from here
   to execve (the parent may have many threads). On failure it writes
   {step, errno} to `report` and exits 127. */
static void isolated_child(const char *path, char *const argv[], char *const envp[], int stdin_fd,
                           int stdout_fd, int stderr_fd, const char *cwd,
                           const struct deckhand_isolation *iso, int report) {
  int failure[2] = {0, 0};
#define FAIL(step)            \
  do {                        \
    failure[0] = (step);      \
    failure[1] = errno;       \
    goto fail;                \
  } while (0)
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* "0" moves the writer: the child is in its cgroup before it runs any of
     its own code, so nothing it forks can start outside it. */
  if (iso->cgroup_procs_fd >= 0 && write(iso->cgroup_procs_fd, "0", 1) != 1) FAIL(DECKHAND_STEP_SETUP);
  if (setpgid(0, 0) != 0) FAIL(DECKHAND_STEP_SETUP);
  if (iso->new_network) {
    if (unshare(CLONE_NEWNET) != 0) FAIL(DECKHAND_STEP_NETWORK);
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) FAIL(DECKHAND_STEP_NETWORK);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) FAIL(DECKHAND_STEP_NETWORK);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) FAIL(DECKHAND_STEP_NETWORK);
    close(sock);
  }
  if (iso->new_mount) {
    if (unshare(CLONE_NEWNS) != 0) FAIL(DECKHAND_STEP_MOUNT);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) FAIL(DECKHAND_STEP_MOUNT);
    for (const char *const *p = iso->readonly_paths; p != NULL && *p != NULL; p++) {
      if (mount(*p, *p, NULL, MS_BIND | MS_REC, NULL) != 0) FAIL(DECKHAND_STEP_MOUNT);
      if (mount(NULL, *p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) != 0) FAIL(DECKHAND_STEP_MOUNT);
    }
  }
  /* Descriptors: move the three above any that could collide, then into place. */
  int in = fcntl(stdin_fd, F_DUPFD_CLOEXEC, 10), out = fcntl(stdout_fd, F_DUPFD_CLOEXEC, 10),
      err = fcntl(stderr_fd, F_DUPFD_CLOEXEC, 10);
  if (in < 0 || out < 0 || err < 0) FAIL(DECKHAND_STEP_SETUP);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) FAIL(DECKHAND_STEP_SETUP);
  /* Close everything else but the report pipe (close-on-exec). */
  if (report > 3) syscall(SYS_close_range, 3, report - 1, 0);
  syscall(SYS_close_range, report + 1, ~0U, 0);
  if (cwd != NULL && chdir(cwd) != 0) FAIL(DECKHAND_STEP_SETUP);
  if (iso->gid >= 0) {
    if (setgroups(0, NULL) != 0 || setgid((gid_t)iso->gid) != 0) FAIL(DECKHAND_STEP_USER);
  }
  if (iso->uid >= 0 && setuid((uid_t)iso->uid) != 0) FAIL(DECKHAND_STEP_USER);
  if (iso->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) FAIL(DECKHAND_STEP_SETUP);
  if (iso->new_pid) {
    /* The plugin becomes pid 1 of a new namespace; this process stays in the
       group as its parent, and ends as it ends. */
    if (unshare(CLONE_NEWPID) != 0) FAIL(DECKHAND_STEP_PID);
    pid_t inner = fork();
    if (inner < 0) FAIL(DECKHAND_STEP_PID);
    if (inner > 0) {
      close(report);
      int status = 0;
      while (waitpid(inner, &status, 0) < 0 && errno == EINTR) {
      }
      if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        kill(getpid(), WTERMSIG(status));
      }
      _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128);
    }
  }
  execve(path, argv, envp);
  FAIL(DECKHAND_STEP_EXEC);
fail:
  (void)!write(report, failure, sizeof(failure));
  _exit(127);
#undef FAIL
}

int deckhand_spawn_isolated(const char *path, char *const argv[], char *const envp[], int stdin_fd,
                            int stdout_fd, int stderr_fd, const char *cwd,
                            const struct deckhand_isolation *iso, int *failed_step, pid_t *pid) {
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return errno;
  pid_t child = fork();
  if (child < 0) {
    int err = errno;
    close(report[0]);
    close(report[1]);
    return err;
  }
  if (child == 0) {
    close(report[0]);
    isolated_child(path, argv, envp, stdin_fd, stdout_fd, stderr_fd, cwd, iso, report[1]);
  }
  close(report[1]);
  int failure[2] = {0, 0};
  ssize_t n;
  while ((n = read(report[0], failure, sizeof(failure))) < 0 && errno == EINTR) {
  }
  close(report[0]);
  if (n == (ssize_t)sizeof(failure)) {
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    *failed_step = failure[0];
    return failure[1] != 0 ? failure[1] : EINVAL;
  }
  *pid = child;
  return 0;
}

int deckhand_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int deckhand_decode_wait_status(int status, int *code) {
  if (WIFEXITED(status)) {
    *code = WEXITSTATUS(status);
    return 1;
  }
  if (WIFSIGNALED(status)) {
    *code = WTERMSIG(status);
    return 2;
  }
  return 0;
}

/// A new close-on-exec unix stream socket and the address of `path`; the
/// socket, or -errno.
static int unix_socket_for(const char *path, struct sockaddr_un *addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(addr->sun_path)) return -ENAMETOOLONG;
  strcpy(addr->sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return fd < 0 ? -errno : fd;
}

int deckhand_unix_connect(const char *path) {
  struct sockaddr_un addr;
  int fd = unix_socket_for(path, &addr);
  if (fd < 0) return fd;
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int deckhand_unix_probe(const char *path) {
  int fd = deckhand_unix_connect(path);
  if (fd < 0) return -fd;
  close(fd);
  return 0;
}

int deckhand_unix_listen(const char *path, int backlog) {
  struct sockaddr_un addr;
  int fd = unix_socket_for(path, &addr);
  if (fd < 0) return fd;
  if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int deckhand_accept(int listener) {
  int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

int deckhand_set_rlimit(pid_t pid, int resource, unsigned long long value) {
  struct rlimit limit = {.rlim_cur = value, .rlim_max = value};
  return prlimit(pid, resource, &limit, NULL) == 0 ? 0 : errno;
}

int deckhand_rlimit_nofile(void) { return RLIMIT_NOFILE; }
int deckhand_rlimit_as(void) { return RLIMIT_AS; }
int deckhand_rlimit_nproc(void) { return RLIMIT_NPROC; }

int deckhand_set_timeouts(int fd, long long microseconds) {
  struct timeval tv;
  tv.tv_sec = microseconds / 1000000;
  tv.tv_usec = microseconds % 1000000;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) return errno;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) return errno;
  return 0;
}

int deckhand_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0 ? 0 : errno; }

unsigned long long deckhand_process_start_time(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *file = fopen(path, "r");
  if (file == NULL) return 0;
  char buffer[4096];
  size_t n = fread(buffer, 1, sizeof(buffer) - 1, file);
  fclose(file);
  buffer[n] = 0;
  char *p = strrchr(buffer, ')');
  if (p == NULL) return 0;
  p += 2; /* skip ") " : now at field 3 */
  unsigned long long value = 0;
  for (int field = 3; field <= 22 && *p; field++) {
    if (field == 22) {
      value = strtoull(p, NULL, 10);
      break;
    }
    p = strchr(p, ' ');
    if (p == NULL) return 0;
    p++;
  }
  return value;
}

#include <dirent.h>

static pid_t parent_of(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *file = fopen(path, "r");
  if (file == NULL) return -1;
  char buffer[1024];
  size_t n = fread(buffer, 1, sizeof(buffer) - 1, file);
  fclose(file);
  buffer[n] = 0;
  char *p = strrchr(buffer, ')');
  if (p == NULL || p[1] == 0 || p[2] == 0) return -1;
  p += 2; /* state */
  p = strchr(p, ' ');
  if (p == NULL) return -1;
  return (pid_t)strtol(p + 1, NULL, 10);
}

int deckhand_descendants(pid_t pid, pid_t *out, int max) {
  DIR *proc = opendir("/proc");
  if (proc == NULL) return 0;
  /* pid → parent table, then a breadth-first walk from `pid`. */
  int capacity = 4096, count = 0;
  pid_t *pids = malloc(sizeof(pid_t) * capacity);
  pid_t *parents = malloc(sizeof(pid_t) * capacity);
  struct dirent *entry;
  while ((entry = readdir(proc)) != NULL && pids && parents) {
    char *end;
    long value = strtol(entry->d_name, &end, 10);
    if (*end != 0 || value <= 0) continue;
    if (count == capacity) {
      capacity *= 2;
      pids = realloc(pids, sizeof(pid_t) * capacity);
      parents = realloc(parents, sizeof(pid_t) * capacity);
      if (!pids || !parents) break;
    }
    pids[count] = (pid_t)value;
    parents[count] = parent_of((pid_t)value);
    count++;
  }
  closedir(proc);
  int found = 0;
  if (pids && parents) {
    int head = -1; /* -1: the root itself */
    while (found < max) {
      pid_t current = head < 0 ? pid : out[head];
      for (int i = 0; i < count && found < max; i++) {
        if (parents[i] == current) out[found++] = pids[i];
      }
      head++;
      if (head >= found) break;
    }
  }
  free(pids);
  free(parents);
  return found;
}

int deckhand_processes_with_env(const char *entry, pid_t *out, int max) {
  DIR *proc = opendir("/proc");
  if (proc == NULL) return 0;
  size_t length = strlen(entry);
  int found = 0;
  /* On the heap, once a call: a thread-local buffer made every thread of the
     process (22 in an idle agent) start with 64 KiB of zeroed, resident TLS. */
  enum { bufferSize = 65536 };
  char *buffer = malloc(bufferSize);
  if (buffer == NULL) {
    closedir(proc);
    return 0;
  }
  struct dirent *item;
  while (found < max && (item = readdir(proc)) != NULL) {
    char *end;
    long value = strtol(item->d_name, &end, 10);
    if (*end != 0 || value <= 1) continue;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/environ", value);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buffer, bufferSize - 1);
    close(fd);
    if (n <= 0) continue;
    buffer[n] = 0;
    /* NUL-separated entries: compare each whole entry. */
    for (ssize_t i = 0; i < n;) {
      size_t left = strnlen(buffer + i, (size_t)(n - i));
      if (left == length && memcmp(buffer + i, entry, length) == 0) {
        out[found++] = (pid_t)value;
        break;
      }
      i += (ssize_t)left + 1;
    }
  }
  free(buffer);
  closedir(proc);
  return found;
}

int deckhand_is_descendant(pid_t pid, pid_t ancestor) {
  for (int depth = 0; depth < 256 && pid > 0; depth++) {
    if (pid == ancestor) return 1;
    if (pid == 1) return 0;
    pid = parent_of(pid);
  }
  return 0;
}

pid_t deckhand_unix_peer_pid(const char *path) {
  int fd = deckhand_unix_connect(path);
  if (fd < 0) return -1;
  struct ucred credentials;
  socklen_t length = sizeof(credentials);
  int rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length);
  close(fd);
  return rc == 0 ? credentials.pid : -1;
}

int deckhand_open_pty(int *primary, int *replica, unsigned short rows, unsigned short columns) {
  int main_fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (main_fd < 0) return errno;
  if (grantpt(main_fd) != 0 || unlockpt(main_fd) != 0) {
    int saved = errno;
    close(main_fd);
    return saved;
  }
  char *name = ptsname(main_fd);
  if (name == NULL) {
    int saved = errno;
    close(main_fd);
    return saved;
  }
  int other = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (other < 0) {
    int saved = errno;
    close(main_fd);
    return saved;
  }
  if (rows > 0 && columns > 0) deckhand_set_window(main_fd, rows, columns);
  *primary = main_fd;
  *replica = other;
  return 0;
}

int deckhand_set_window(int fd, unsigned short rows, unsigned short columns) {
  struct winsize size = {.ws_row = rows, .ws_col = columns};
  return ioctl(fd, TIOCSWINSZ, &size) == 0 ? 0 : errno;
}

int deckhand_get_window(int fd, unsigned short *rows, unsigned short *columns) {
  struct winsize size;
  if (ioctl(fd, TIOCGWINSZ, &size) != 0) return errno;
  *rows = size.ws_row;
  *columns = size.ws_col;
  return 0;
}

int deckhand_pin_to_cpu(pid_t tid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(tid, sizeof(set), &set) == 0 ? 0 : errno;
}
