/*
 * A statically linked program that runs until killed: the dynamic loader
 * never sees it, so the shim cannot be preloaded into it.  The launcher
 * must say so, before starting it and again when no hello comes.
 */
#include <unistd.h>

int main(void)
{
	for (;;) {
		pause();
	}
}
