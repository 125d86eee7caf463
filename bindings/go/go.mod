module isotcp.example/isotcp

go 1.19
