# tools/local.mk - optim-plan (included from the top Makefile.am, after the
# tools section: it appends to bin_PROGRAMS and EXTRA_DIST).
# The owner plan of the MPI layer (mpi/plan.c, which needs no MPI through
# mpi/plan.h) and the Newton-Schulz flop count (lib/ns.c, hidden symbols)
# are compiled in, so the tool builds and runs without MPI.
bin_PROGRAMS += tools/optim-plan
tools_optim_plan_SOURCES = tools/optim-plan.c mpi/plan.c lib/ns.c
tools_optim_plan_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/mpi
tools_optim_plan_CFLAGS = $(AM_CFLAGS) $(OPENBLAS_CFLAGS)
tools_optim_plan_LDADD = $(OPENBLAS_LIBS) -lm
EXTRA_DIST += mpi/plan.h
