#include <stdio.h>
#include "optimlab.h"
int main(void) { printf("optimlab %s\n", OL_VERSION_STRING); return 0; }
