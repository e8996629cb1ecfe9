/*
 * A statically linked program that runs until killed: the dynamic loader
 * never sees it, so the shim cannot be preloaded into it.  The launcher
 * must say so, before starting it and again when no hello comes.
 *
 * static-sleeper --exec-if-id ID PROGRAM [ARGS...]: the worker whose
 * CLUSTERIZE_WORKER_ID is ID execs PROGRAM instead (which, if dynamically
 * linked, gets the shim and says hello); the others sleep.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "--exec-if-id") == 0) {
		const char *id = getenv("CLUSTERIZE_WORKER_ID");

		if (id != NULL && strcmp(id, argv[2]) == 0) {
			execv(argv[3], argv + 3);
			perror(argv[3]);
			return 127;
		}
	}
	for (;;) {
		pause();
	}
}
