# tools/local.mk - optim-plan, optim-train and optim-schedule (included from
# the top Makefile.am, after the tools section: it appends to bin_PROGRAMS
# and EXTRA_DIST).
# The owner plan of the MPI layer (mpi/plan.c, which needs no MPI through
# mpi/plan.h) and the Newton-Schulz flop count (lib/ns.c, hidden symbols)
# are compiled in, so the tool builds and runs without MPI.
bin_PROGRAMS += tools/optim-plan
tools_optim_plan_SOURCES = tools/optim-plan.c mpi/plan.c lib/ns.c
tools_optim_plan_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/mpi
tools_optim_plan_CFLAGS = $(AM_CFLAGS) $(OPENBLAS_CFLAGS)
tools_optim_plan_LDADD = $(OPENBLAS_LIBS) -lm
EXTRA_DIST += mpi/plan.h

# optim-train: the main job (tools/train/: data readers, model, spec
# strings, checkpoints).  Built with liboptim_mpi when MPI is available, so
# that it runs data-parallel under mpirun.
bin_PROGRAMS += tools/optim-train
tools_optim_train_SOURCES = tools/optim-train.c tools/common.c tools/common.h \
	tools/train/data.c tools/train/data.h \
	tools/train/model.c tools/train/model.h tools/train/spec.c tools/train/spec.h \
	tools/train/checkpoint.c tools/train/checkpoint.h
tools_optim_train_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tools
tools_optim_train_CFLAGS = $(AM_CFLAGS) $(OPTIM_VEC_CFLAGS) $(OPENBLAS_CFLAGS) $(ZLIB_CFLAGS)
tools_optim_train_LDADD = lib/liboptim.la $(OPENBLAS_LIBS) $(ZLIB_LIBS) -lm
if HAVE_MPI
tools_optim_train_CPPFLAGS += -DOPTIM_TRAIN_MPI
tools_optim_train_CFLAGS += $(MPI_CFLAGS)
tools_optim_train_LDADD += mpi/liboptim_mpi.la $(MPI_LIBS)
endif

# optim-schedule: schedules as CSV (and plots).  lib/schedule.c is compiled
# in, for the parser's messages (hidden symbols), so the tool needs neither
# liboptim.so nor a libtool wrapper.
bin_PROGRAMS += tools/optim-schedule
tools_optim_schedule_SOURCES = tools/optim-schedule.c tools/common.c tools/common.h \
	lib/schedule.c lib/schedule.h
tools_optim_schedule_LDADD = -lm
