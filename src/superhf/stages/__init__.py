"""One module per DVC stage, each a thin ``main()`` over the library beside it."""
