#!/bin/bash
[ "$OMPI_COMM_WORLD_RANK" = 0 ] && exit 7; sleep 1; exit 0
