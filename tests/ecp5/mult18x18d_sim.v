// Behavioural simulation model of the Lattice ECP5 sysDSP primitive MULT18X18D, used standalone
// as an 18x18 multiplier (as bfly's hw/mult.py instantiates it). yosys ships only a blackbox for
// this cell (share/ecp5/cells_bb.v); this file lets an ECP5-target netlist run under Verilator.
//
// Sources. Ports, parameters and parameter defaults follow yosys's cells_bb.v blackbox. The
// behaviour follows Lattice's sysDSP descriptions for this DSP family (the LatticeECP2/M data
// sheet's sysDSP chapter and the LatticeECP3 sysDSP Usage Guide, TN1182, whose slice the ECP5
// one inherits): the operands pass optional input registers, the multiplier feeds an optional
// intermediate pipeline register and then an optional output register; every register picks
// its clock, clock enable and reset from four sources (CLK0-3, CE0-3, RST0-3); operands are
// two's complement or unsigned, selected per operand. The legal values ("NONE" or "CLK0".."CLK3"
// for the clocks) and the "SYNC" default of RESETMODE are those nextpnr's ECP5 packer and
// bitstream writer accept.
//
// Modelled:
//  * P[35:0] = A * B, each operand sign-extended when its SIGNEDA/SIGNEDB pin is 1 and
//    zero-extended when 0 (the 36-bit product is exact for every signed/unsigned mix).
//  * Four register stages, each bypassed when its REG_<stage>_CLK is "NONE", else clocked on the
//    rising edge of the clock it names: INPUTA (A and SIGNEDA), INPUTB (B and SIGNEDB),
//    PIPELINE (after the multiplier) and OUTPUT (drives P). REG_<stage>_CE ("CE0".."CE3") and
//    REG_<stage>_RST ("RST0".."RST3") pick the enable and the reset; a reset clears the stage to
//    0 and wins over the enable; RESETMODE "SYNC" resets at the clock edge, "ASYNC" at once.
//    Registers power up at 0.
//  * Unconnected pins: CE0-3 are pulled high and RST0-3 low (tri1/tri0 nets), so a netlist that
//    leaves them open (yosys and Amaranth omit unused pins) behaves as with CE=1, RST=0. This
//    holds in Verilator too, where an open input would otherwise read 0.
//  * SIGNEDP: the OR of the two operand sign flags, aligned with P (an assumption; unverified).
// Not modelled:
//  * The shift and cascade chains: SOURCEA, SOURCEB, SRIA, SRIB, SOURCEB_MODE and CAS_MATCH_REG
//    are ignored (operands always come from A and B); SROA, SROB, ROA, ROB and ROC are driven 0.
//  * The C input and REG_INPUTC_* (C only feeds an ALU54B), MULT_BYPASS="ENABLED",
//    HIGHSPEED_CLK and CLKn_DIV; a non-default MULT_BYPASS or HIGHSPEED_CLK prints a warning.
//  * GSR: there is no global set/reset net here; the GSR parameter is ignored.
//  * Pairing with an ALU54B, timing, and X propagation of undriven A/B/SIGNED pins.
// An unknown REG_*_CLK/_CE/_RST or RESETMODE value prints an error and stops the simulation.
//
// Plain Verilog-2001; the helper module below has a bfly-specific name to avoid clashes.

module MULT18X18D(
    A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0, B17, B16, B15,
    B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0, C17, C16, C15, C14, C13, C12,
    C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3,
    CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0, SRIA17, SRIA16, SRIA15, SRIA14,
    SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7, SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1,
    SRIA0, SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8, SRIB7,
    SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0, SROA17, SROA16, SROA15, SROA14, SROA13,
    SROA12, SROA11, SROA10, SROA9, SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0,
    SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7, SROB6,
    SROB5, SROB4, SROB3, SROB2, SROB1, SROB0, ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11,
    ROA10, ROA9, ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0, ROB17, ROB16, ROB15, ROB14,
    ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2, ROB1, ROB0, ROC17,
    ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5, ROC4, ROC3,
    ROC2, ROC1, ROC0, P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21,
    P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0,
    SIGNEDP);

    // Defaults as in yosys's cells_bb.v.
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";

    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0;
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0;
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0;
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB;
    input CLK3, CLK2, CLK1, CLK0;
    input CE3, CE2, CE1, CE0;
    input RST3, RST2, RST1, RST0;
    input SRIA17, SRIA16, SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7,
        SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0;
    input SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8, SRIB7,
        SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0;
    output SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7,
        SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0;
    output SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7,
        SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0;
    output ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5,
        ROA4, ROA3, ROA2, ROA1, ROA0;
    output ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5,
        ROB4, ROB3, ROB2, ROB1, ROB0;
    output ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5,
        ROC4, ROC3, ROC2, ROC1, ROC0;
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
        P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0;
    output SIGNEDP;

    // Open enables read as active, open resets as inactive.
    tri1 CE3, CE2, CE1, CE0;
    tri0 RST3, RST2, RST1, RST0;

    wire [17:0] a_in = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2,
                        A1, A0};
    wire [17:0] b_in = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2,
                        B1, B0};
    wire [3:0] clk = {CLK3, CLK2, CLK1, CLK0};
    wire [3:0] ce = {CE3, CE2, CE1, CE0};
    wire [3:0] rst = {RST3, RST2, RST1, RST0};

    // Input stages: {sign flag, operand}.
    wire [18:0] a_q, b_q;
    bfly_mult18x18d_stage #(.WIDTH(19), .CLK(REG_INPUTA_CLK), .CE(REG_INPUTA_CE),
                            .RST(REG_INPUTA_RST), .RESETMODE(RESETMODE))
        stage_a (.clk(clk), .ce(ce), .rst(rst), .d({SIGNEDA, a_in}), .q(a_q));
    bfly_mult18x18d_stage #(.WIDTH(19), .CLK(REG_INPUTB_CLK), .CE(REG_INPUTB_CE),
                            .RST(REG_INPUTB_RST), .RESETMODE(RESETMODE))
        stage_b (.clk(clk), .ce(ce), .rst(rst), .d({SIGNEDB, b_in}), .q(b_q));

    // The multiplier: 19-bit two's complement operands (sign or zero extension per flag).
    wire signed [18:0] a_ext = {a_q[18] & a_q[17], a_q[17:0]};
    wire signed [18:0] b_ext = {b_q[18] & b_q[17], b_q[17:0]};
    wire signed [37:0] product = a_ext * b_ext;
    wire [36:0] m_out = {a_q[18] | b_q[18], product[35:0]};   // {SIGNEDP, P}

    wire [36:0] pipe_q, out_q;
    bfly_mult18x18d_stage #(.WIDTH(37), .CLK(REG_PIPELINE_CLK), .CE(REG_PIPELINE_CE),
                            .RST(REG_PIPELINE_RST), .RESETMODE(RESETMODE))
        stage_pipe (.clk(clk), .ce(ce), .rst(rst), .d(m_out), .q(pipe_q));
    bfly_mult18x18d_stage #(.WIDTH(37), .CLK(REG_OUTPUT_CLK), .CE(REG_OUTPUT_CE),
                            .RST(REG_OUTPUT_RST), .RESETMODE(RESETMODE))
        stage_out (.clk(clk), .ce(ce), .rst(rst), .d(pipe_q), .q(out_q));

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
            P0} = out_q[35:0];
    assign SIGNEDP = out_q[36];

    // Shift/cascade outputs are not modelled: constant 0.
    assign {SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7,
            SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0} = 18'd0;
    assign {SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7,
            SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0} = 18'd0;
    assign {ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5,
            ROA4, ROA3, ROA2, ROA1, ROA0} = 18'd0;
    assign {ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5,
            ROB4, ROB3, ROB2, ROB1, ROB0} = 18'd0;
    assign {ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5,
            ROC4, ROC3, ROC2, ROC1, ROC0} = 18'd0;

    initial begin
        if (MULT_BYPASS != "DISABLED")
            $display("MULT18X18D %m: warning: MULT_BYPASS=%0s is not modelled", MULT_BYPASS);
        if (HIGHSPEED_CLK != "NONE")
            $display("MULT18X18D %m: warning: HIGHSPEED_CLK=%0s is not modelled", HIGHSPEED_CLK);
    end
endmodule

// One optional register stage of MULT18X18D: a wire when CLK is "NONE", else a register on the
// named clock with the named enable and reset.
module bfly_mult18x18d_stage(clk, ce, rst, d, q);
    parameter WIDTH = 1;
    parameter [63:0] CLK = "NONE";      // strings, right-aligned in 8 characters
    parameter [63:0] CE = "CE0";
    parameter [63:0] RST = "RST0";
    parameter [63:0] RESETMODE = "SYNC";

    input [3:0] clk, ce, rst;
    input [WIDTH-1:0] d;
    output [WIDTH-1:0] q;

    // -1: no register; -2: not a legal value
    localparam integer CLK_SEL = (CLK == "NONE") ? -1 : (CLK == "CLK0") ? 0 : (CLK == "CLK1") ? 1 :
                                 (CLK == "CLK2") ? 2 : (CLK == "CLK3") ? 3 : -2;
    localparam integer CE_SEL = (CE == "CE0") ? 0 : (CE == "CE1") ? 1 : (CE == "CE2") ? 2 :
                                (CE == "CE3") ? 3 : -2;
    localparam integer RST_SEL = (RST == "RST0") ? 0 : (RST == "RST1") ? 1 : (RST == "RST2") ? 2 :
                                 (RST == "RST3") ? 3 : -2;
    localparam ASYNC = (RESETMODE == "ASYNC");
    localparam BAD = (CLK_SEL == -2) ||
                     (CLK_SEL >= 0 && (CE_SEL < 0 || RST_SEL < 0 ||
                                       (RESETMODE != "SYNC" && RESETMODE != "ASYNC")));

    initial begin
        if (BAD) begin
            $display("MULT18X18D %m: error: unsupported register setting CLK=%0s CE=%0s RST=%0s RESETMODE=%0s",
                     CLK, CE, RST, RESETMODE);
            $finish;
        end
    end

    generate
        if (CLK_SEL < 0) begin : bypass
            assign q = d;
        end else begin : register
            wire c = clk[CLK_SEL];
            wire e = ce[CE_SEL < 0 ? 0 : CE_SEL];
            wire r = rst[RST_SEL < 0 ? 0 : RST_SEL];
            reg [WIDTH-1:0] state;
            initial state = {WIDTH{1'b0}};
            if (ASYNC) begin : async_reset
                always @(posedge c or posedge r)
                    if (r)
                        state <= {WIDTH{1'b0}};
                    else if (e)
                        state <= d;
            end else begin : sync_reset
                always @(posedge c)
                    if (r)
                        state <= {WIDTH{1'b0}};
                    else if (e)
                        state <= d;
            end
            assign q = state;
        end
    endgenerate
endmodule
