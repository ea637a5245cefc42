// SPDX-License-Identifier: MIT
/* libbpf glue for xdptest: thin wrappers that return negative errno values. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "xt_bpf.h"

#ifndef BPF_F_TEST_XDP_LIVE_FRAMES
#define BPF_F_TEST_XDP_LIVE_FRAMES (1U << 1)
#endif

/* libbpf prints through one global callback; keep each thread's messages apart. */
#define XT_MSG_CAP 8192
static __thread char xt_msgs[XT_MSG_CAP];
static __thread size_t xt_msgs_len;

static int xt_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	int n;

	if (level == LIBBPF_DEBUG || xt_msgs_len >= XT_MSG_CAP - 1)
		return 0;
	n = vsnprintf(xt_msgs + xt_msgs_len, XT_MSG_CAP - xt_msgs_len, fmt, args);
	if (n > 0)
		xt_msgs_len += (size_t)n < XT_MSG_CAP - xt_msgs_len ? (size_t)n : XT_MSG_CAP - 1 - xt_msgs_len;
	return 0;
}

__attribute__((constructor)) static void xt_bpf_init(void)
{
	libbpf_set_print(xt_libbpf_print);
}

int xt_native_abi(void)
{
	return XT_NATIVE_ABI;
}

const char *xt_libbpf_version(void)
{
	return libbpf_version_string();
}

int xt_libbpf_messages_take(char *buf, unsigned long size)
{
	size_t n = xt_msgs_len < size ? xt_msgs_len : size;

	memcpy(buf, xt_msgs, n);
	xt_msgs_len = 0;
	return (int)n;
}

int xt_obj_open(const char *path, char *log_buf, unsigned long log_size, struct bpf_object **out)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .kernel_log_buf = log_buf, .kernel_log_size = log_size);
	struct bpf_object *obj;
	long err;

	obj = bpf_object__open_file(path, &opts);
	err = libbpf_get_error(obj);
	if (err) {
		*out = NULL;
		return (int)err;
	}
	*out = obj;
	return 0;
}

const void *xt_obj_btf_raw(struct bpf_object *obj, unsigned int *size)
{
	struct btf *btf = bpf_object__btf(obj);

	*size = 0;
	return btf ? btf__raw_data(btf, size) : NULL;
}

int xt_obj_load(struct bpf_object *obj)
{
	return bpf_object__load(obj);
}

void xt_obj_close(struct bpf_object *obj)
{
	bpf_object__close(obj);
}

struct bpf_program *xt_obj_next_program(struct bpf_object *obj, struct bpf_program *prev)
{
	return bpf_object__next_program(obj, prev);
}

const char *xt_program_name(const struct bpf_program *prog)
{
	return bpf_program__name(prog);
}

const char *xt_program_section(const struct bpf_program *prog)
{
	return bpf_program__section_name(prog);
}

int xt_program_type(const struct bpf_program *prog)
{
	return (int)bpf_program__type(prog);
}

int xt_program_fd(const struct bpf_program *prog)
{
	return bpf_program__fd(prog);
}

int xt_program_set_autoload(struct bpf_program *prog, int autoload)
{
	return bpf_program__set_autoload(prog, autoload != 0);
}

int xt_program_set_type(struct bpf_program *prog, int type)
{
	return bpf_program__set_type(prog, (enum bpf_prog_type)type);
}

int xt_program_add_flags(struct bpf_program *prog, unsigned int flags)
{
	return bpf_program__set_flags(prog, bpf_program__flags(prog) | flags);
}

int xt_obj_set_offload_ifindex(struct bpf_object *obj, unsigned int ifindex)
{
	struct bpf_program *prog;
	struct bpf_map *map;
	int err;

	bpf_object__for_each_program(prog, obj)
		bpf_program__set_ifindex(prog, ifindex);
	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map))
			continue;
		err = bpf_map__set_ifindex(map, ifindex);
		if (err)
			return err;
	}
	return 0;
}

struct bpf_map *xt_obj_next_map(struct bpf_object *obj, struct bpf_map *prev)
{
	return bpf_object__next_map(obj, prev);
}

const char *xt_map_name(const struct bpf_map *map)
{
	return bpf_map__name(map);
}

int xt_map_fd(const struct bpf_map *map)
{
	return bpf_map__fd(map);
}

int xt_map_type(const struct bpf_map *map)
{
	return (int)bpf_map__type(map);
}

unsigned int xt_map_key_size(const struct bpf_map *map)
{
	return bpf_map__key_size(map);
}

unsigned int xt_map_value_size(const struct bpf_map *map)
{
	return bpf_map__value_size(map);
}

unsigned int xt_map_max_entries(const struct bpf_map *map)
{
	return bpf_map__max_entries(map);
}

int xt_map_is_internal(const struct bpf_map *map)
{
	return bpf_map__is_internal(map);
}

const void *xt_map_initial_value(struct bpf_map *map, unsigned long *size)
{
	size_t n = 0;
	const void *data = bpf_map__initial_value(map, &n);

	*size = n;
	return data;
}

int xt_map_set_initial_value(struct bpf_map *map, const void *data, unsigned long size)
{
	return bpf_map__set_initial_value(map, data, size);
}

int xt_map_set_max_entries(struct bpf_map *map, unsigned int max_entries)
{
	return bpf_map__set_max_entries(map, max_entries);
}

const char *xt_map_pin_path(const struct bpf_map *map)
{
	return bpf_map__pin_path(map);
}

int xt_map_set_pin_path(struct bpf_map *map, const char *path)
{
	return bpf_map__set_pin_path(map, path);
}

int xt_possible_cpus(void)
{
	return libbpf_num_possible_cpus();
}

/* The low-level map calls return -1 and set errno; turn that into -errno. */
static int xt_errno_of(int ret)
{
	return ret < 0 ? -errno : ret;
}

int xt_map_lookup(int fd, const void *key, void *value)
{
	return xt_errno_of(bpf_map_lookup_elem(fd, key, value));
}

int xt_map_update(int fd, const void *key, const void *value, unsigned long long flags)
{
	return xt_errno_of(bpf_map_update_elem(fd, key, value, flags));
}

int xt_map_delete(int fd, const void *key)
{
	return xt_errno_of(bpf_map_delete_elem(fd, key));
}

int xt_map_next_key(int fd, const void *key, void *next_key)
{
	return xt_errno_of(bpf_map_get_next_key(fd, key, next_key));
}

int xt_xdp_link_create(int prog_fd, int ifindex, unsigned int flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
	int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);

	return fd < 0 ? -errno : fd;
}

int xt_prog_info(int prog_fd, struct xt_prog_info *info)
{
	struct bpf_prog_info kinfo;
	__u32 len = sizeof(kinfo);
	int err;

	memset(&kinfo, 0, sizeof(kinfo));
	err = bpf_obj_get_info_by_fd(prog_fd, &kinfo, &len);
	if (err)
		return xt_errno_of(err);
	info->id = kinfo.id;
	info->type = kinfo.type;
	memcpy(info->name, kinfo.name, sizeof(info->name));
	info->name[sizeof(info->name) - 1] = '\0';
	return 0;
}

int xt_prog_name_by_id(unsigned int id, char *name)
{
	struct xt_prog_info info;
	int fd, err;

	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return -errno;
	err = xt_prog_info(fd, &info);
	close(fd);
	if (!err)
		memcpy(name, info.name, sizeof(info.name));
	return err;
}

int xt_prog_test_run(int prog_fd, const void *data_in, unsigned int size_in, void *data_out,
		     unsigned int size_out, unsigned int repeat, struct xt_test_run *run)
{
	struct xdp_md ctx = {
		.data_end = size_in,
		.ingress_ifindex = run->ingress_ifindex,
		.rx_queue_index = run->rx_queue_index,
	};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data_in, .data_size_in = size_in,
		    .data_out = data_out, .data_size_out = size_out, .repeat = repeat,
		    .flags = run->flags, .batch_size = run->batch_size);
	int err;

	if (run->flags & BPF_F_TEST_XDP_LIVE_FRAMES) {
		/* live frames take no output buffer */
		opts.data_out = NULL;
		opts.data_size_out = 0;
	}
	if (run->use_ctx) {
		opts.ctx_in = &ctx;
		opts.ctx_size_in = sizeof(ctx);
	}
	err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err)
		return xt_errno_of(err);
	run->retval = opts.retval;
	run->duration_ns = opts.duration;
	run->data_size_out = opts.data_size_out;
	return 0;
}
