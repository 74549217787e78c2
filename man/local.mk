# Man pages (maintained with the pages themselves).
# Every file under man/ must be listed here; tests/manpages.sh checks it.
dist_man_MANS = \
	man/man1/optim-bench.1 \
	man/man1/optim-info.1 \
	man/man3/liboptim.3 \
	man/man3/optim_add_group.3 \
	man/man3/optim_add_param.3 \
	man/man3/optim_algorithm_count.3 \
	man/man3/optim_algorithm_doc.3 \
	man/man3/optim_algorithm_name.3 \
	man/man3/optim_configure.3 \
	man/man3/optim_create.3 \
	man/man3/optim_destroy.3 \
	man/man3/optim_errmsg.3 \
	man/man3/optim_get_bool.3 \
	man/man3/optim_get_counter.3 \
	man/man3/optim_get_double.3 \
	man/man3/optim_get_int.3 \
	man/man3/optim_get_string.3 \
	man/man3/optim_group_algorithm.3 \
	man/man3/optim_group_count.3 \
	man/man3/optim_hparam_count.3 \
	man/man3/optim_hparam_info.3 \
	man/man3/optim_load.3 \
	man/man3/optim_param_bind.3 \
	man/man3/optim_param_count.3 \
	man/man3/optim_param_find.3 \
	man/man3/optim_param_info.3 \
	man/man3/optim_save.3 \
	man/man3/optim_set_bool.3 \
	man/man3/optim_set_double.3 \
	man/man3/optim_set_int.3 \
	man/man3/optim_set_option.3 \
	man/man3/optim_set_string.3 \
	man/man3/optim_set_threads.3 \
	man/man3/optim_state_buffer.3 \
	man/man3/optim_state_count.3 \
	man/man3/optim_state_info.3 \
	man/man3/optim_state_scalar.3 \
	man/man3/optim_step.3 \
	man/man3/optim_strerror.3 \
	man/man3/optim_version.3
