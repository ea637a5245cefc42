/*
 * libbpf glue: what Python needs to open, load, inspect and test-run BPF
 * objects. This header is read by cffi's cdef, so it holds declarations only
 * (no includes, no preprocessor conditionals). Functions return 0 or a
 * negative errno.
 */
#define XT_NATIVE_ABI 2

struct bpf_object;
struct bpf_program;
struct bpf_map;

struct xt_prog_info {
	unsigned int id;
	unsigned int type;
	char name[16];
};

struct xt_test_run {
	unsigned int retval;
	unsigned int duration_ns;
	unsigned int data_size_out;
	unsigned int ingress_ifindex;
	unsigned int rx_queue_index;
	int use_ctx;
	unsigned int flags;		/* BPF_F_TEST_* (e.g. BPF_F_TEST_XDP_LIVE_FRAMES = 2) */
	unsigned int batch_size;	/* live frames: frames per batch (0: kernel default) */
};

int xt_native_abi(void);
const char *xt_libbpf_version(void);

/* libbpf's own messages (warnings, errors) of the calling thread since the last take. */
int xt_libbpf_messages_take(char *buf, unsigned long size);

int xt_obj_open(const char *path, char *log_buf, unsigned long log_size, struct bpf_object **out);
/* The object's BTF as raw bytes (NULL without BTF); valid while the object is open. */
const void *xt_obj_btf_raw(struct bpf_object *obj, unsigned int *size);
int xt_obj_load(struct bpf_object *obj);
void xt_obj_close(struct bpf_object *obj);

struct bpf_program *xt_obj_next_program(struct bpf_object *obj, struct bpf_program *prev);
const char *xt_program_name(const struct bpf_program *prog);
const char *xt_program_section(const struct bpf_program *prog);
int xt_program_type(const struct bpf_program *prog);
int xt_program_fd(const struct bpf_program *prog);
int xt_program_set_autoload(struct bpf_program *prog, int autoload);
/* For sections libbpf no longer knows (legacy SEC("xdp_foo")): say what the program is. */
int xt_program_set_type(struct bpf_program *prog, int type);
/* Add load flags (BPF_F_XDP_HAS_FRAGS: the program takes multi-buffer frames). */
int xt_program_add_flags(struct bpf_program *prog, unsigned int flags);
/* Offload: load the program (and its maps) for the device with this ifindex. */
int xt_obj_set_offload_ifindex(struct bpf_object *obj, unsigned int ifindex);

struct bpf_map *xt_obj_next_map(struct bpf_object *obj, struct bpf_map *prev);
const char *xt_map_name(const struct bpf_map *map);
int xt_map_fd(const struct bpf_map *map);
int xt_map_type(const struct bpf_map *map);
unsigned int xt_map_key_size(const struct bpf_map *map);
unsigned int xt_map_value_size(const struct bpf_map *map);
unsigned int xt_map_max_entries(const struct bpf_map *map);
int xt_map_is_internal(const struct bpf_map *map);
/* Global data (.rodata, .data, .bss): the section's contents as libbpf holds them, and the
 * contents to load (before load only); the size of a map before load. */
const void *xt_map_initial_value(struct bpf_map *map, unsigned long *size);
int xt_map_set_initial_value(struct bpf_map *map, const void *data, unsigned long size);
int xt_map_set_max_entries(struct bpf_map *map, unsigned int max_entries);
/* LIBBPF_PIN_BY_NAME: where the map will be pinned (NULL when it is not pinned); moving it. */
const char *xt_map_pin_path(const struct bpf_map *map);
int xt_map_set_pin_path(struct bpf_map *map, const char *path);

int xt_possible_cpus(void);
int xt_map_lookup(int fd, const void *key, void *value);
int xt_map_update(int fd, const void *key, const void *value, unsigned long long flags);
int xt_map_delete(int fd, const void *key);
int xt_map_next_key(int fd, const void *key, void *next_key);

int xt_prog_info(int prog_fd, struct xt_prog_info *info);
/* BPF_LINK_CREATE for XDP (5.9+) on ifindex, in the caller's network namespace: the link's fd,
 * or a negative errno. Closing the fd detaches the program. */
int xt_xdp_link_create(int prog_fd, int ifindex, unsigned int flags);
/* The name of the program with this id (16 bytes with the NUL). */
int xt_prog_name_by_id(unsigned int id, char *name);
int xt_prog_test_run(int prog_fd, const void *data_in, unsigned int size_in, void *data_out,
		     unsigned int size_out, unsigned int repeat, struct xt_test_run *run);
