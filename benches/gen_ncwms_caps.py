#!/usr/bin/env python3
"""Writes an ncWMS-like WMS 1.3.0 GetCapabilities document to stdout (Python standard
library only, deterministic): the shape ncWMS 1.x and the WMS of THREDDS (which embeds
ncWMS) serve for a few climate data sets: one layer per variable, a style with a
LegendURL per palette, time and elevation dimensions, every OnlineResource pointing at the
server.

    benches/gen_ncwms_caps.py > fixtures/capabilities/ncwms-caps.xml

`benches/rewriter.rs` reads that file; it also makes its 5 MB THREDDS-size document from it
by repeating the data set layers (the lines between the first and the last line that is
exactly `DATASET_OPEN` / `DATASET_CLOSE` below), so keep those lines as they are.
"""

import argparse
import sys
from xml.sax.saxutils import escape

SERVER = "http://localhost:8080/ncWMS/wms"
DATASET_OPEN = "            <Layer>"
DATASET_CLOSE = "            </Layer>"

PALETTES = [
    "alg", "alg2", "ferret", "greyscale", "ncview", "occam", "occam_pastel-30",
    "rainbow", "redblue", "sst_36", "blueheat", "default", "lightblue", "posneg",
]
CRS = ["EPSG:4326", "CRS:84", "EPSG:41001", "EPSG:27700", "EPSG:3408", "EPSG:3409",
       "EPSG:3857", "EPSG:32661", "EPSG:32761"]
PRESSURE_LEVELS = [100000, 92500, 85000, 70000, 60000, 50000, 40000, 30000, 25000,
                   20000, 15000, 10000, 7000, 5000, 3000, 2000, 1000]

# (id, title, frequency, levels, [(variable, long name, units)])
DATASETS = [
    ("cmip5_mpi-esm-lr_historical_day", "CMIP5 MPI-ESM-LR historical r1i1p1, daily",
     "day", False,
     [("tas", "Near-Surface Air Temperature", "K"),
      ("tasmax", "Daily Maximum Near-Surface Air Temperature", "K"),
      ("tasmin", "Daily Minimum Near-Surface Air Temperature", "K"),
      ("pr", "Precipitation", "kg m-2 s-1"),
      ("psl", "Sea Level Pressure", "Pa"),
      ("sfcWind", "Daily-Mean Near-Surface Wind Speed", "m s-1")]),
    ("cmip5_mpi-esm-lr_rcp45_mon", "CMIP5 MPI-ESM-LR rcp45 r1i1p1, monthly",
     "mon", False,
     [("tas", "Near-Surface Air Temperature", "K"),
      ("pr", "Precipitation", "kg m-2 s-1"),
      ("huss", "Near-Surface Specific Humidity", "1"),
      ("rsds", "Surface Downwelling Shortwave Radiation", "W m-2")]),
    ("cmip5_mpi-esm-lr_rcp45_mon_plev", "CMIP5 MPI-ESM-LR rcp45 r1i1p1, monthly, pressure levels",
     "mon", True,
     [("ta", "Air Temperature", "K"),
      ("ua", "Eastward Wind", "m s-1"),
      ("va", "Northward Wind", "m s-1"),
      ("zg", "Geopotential Height", "m")]),
    ("cordex_eur-11_rcp85_day", "CORDEX EUR-11 CLMcom-CCLM4-8-17 rcp85, daily",
     "day", False,
     [("tas", "Near-Surface Air Temperature", "K"),
      ("pr", "Precipitation", "kg m-2 s-1")]),
]


def monthly(start_year, end_year):
    return ",".join(f"{y}-{m:02d}-16T12:00:00.000Z"
                    for y in range(start_year, end_year + 1) for m in range(1, 13))


def layer(out, ds_id, freq, levels, var, long_name, units):
    name = f"{ds_id}/{var}"
    out.append('                <Layer queryable="1">')
    out.append(f"                    <Name>{escape(name)}</Name>")
    out.append(f"                    <Title>{escape(long_name)}</Title>")
    out.append(f"                    <Abstract>{escape(long_name)} ({escape(units)}), "
               f"variable {var} of {ds_id}</Abstract>")
    out.append("                    <EX_GeographicBoundingBox>"
               "<westBoundLongitude>-180.0</westBoundLongitude>"
               "<eastBoundLongitude>180.0</eastBoundLongitude>"
               "<southBoundLatitude>-90.0</southBoundLatitude>"
               "<northBoundLatitude>90.0</northBoundLatitude></EX_GeographicBoundingBox>")
    out.append('                    <BoundingBox CRS="CRS:84" minx="-180.0" maxx="180.0"'
               ' miny="-90.0" maxy="90.0"/>')
    if freq == "day":
        out.append('                    <Dimension name="time" units="ISO8601"'
                   ' multipleValues="true" current="true" default="2005-12-31T12:00:00.000Z">')
        out.append("                        1950-01-01T12:00:00.000Z/2005-12-31T12:00:00.000Z/P1D")
    else:
        out.append('                    <Dimension name="time" units="ISO8601"'
                   ' multipleValues="true" current="true" default="2020-12-16T12:00:00.000Z">')
        out.append("                        " + monthly(2006, 2020))
    out.append("                    </Dimension>")
    if levels:
        out.append('                    <Dimension name="elevation" units="Pa"'
                   ' default="100000.0">')
        out.append("                        " + ",".join(f"{p}.0" for p in PRESSURE_LEVELS))
        out.append("                    </Dimension>")
    for palette in PALETTES:
        style = f"boxfill/{palette}"
        legend = (f"{SERVER}?REQUEST=GetLegendGraphic&amp;LAYER={escape(name)}"
                  f"&amp;PALETTE={palette}&amp;COLORBARONLY=false")
        out.append("                    <Style>")
        out.append(f"                        <Name>{style}</Name>")
        out.append(f"                        <Title>{style}</Title>")
        out.append(f"                        <Abstract>boxfill style, using the {palette}"
                   " palette</Abstract>")
        out.append('                        <LegendURL width="110" height="264">')
        out.append("                            <Format>image/png</Format>")
        out.append('                            <OnlineResource xlink:type="simple"'
                   f' xlink:href="{legend}"/>')
        out.append("                        </LegendURL>")
        out.append("                    </Style>")
    out.append("                </Layer>")


def document(datasets):
    href = f'<OnlineResource xlink:type="simple" xlink:href="{SERVER}"/>'
    dcp = f"<DCPType><HTTP><Get>{href}</Get></HTTP></DCPType>"
    out = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        '<WMS_Capabilities version="1.3.0" updateSequence="2026-11-30T12:00:00.000Z"',
        '        xmlns="http://www.opengis.net/wms"',
        '        xmlns:xlink="http://www.w3.org/1999/xlink"',
        '        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
        '        xsi:schemaLocation="http://www.opengis.net/wms'
        ' http://schemas.opengis.net/wms/1.3.0/capabilities_1_3_0.xsd">',
        "    <Service>",
        "        <Name>WMS</Name>",
        "        <Title>Climate data WMS</Title>",
        "        <Abstract>Web Map Service of model output (CMIP5, CORDEX) for the"
        " birdhouse demo &amp; tests</Abstract>",
        "        <KeywordList><Keyword>climate</Keyword><Keyword>CMIP5</Keyword>"
        "<Keyword>CORDEX</Keyword></KeywordList>",
        f"        {href}",
        "        <ContactInformation>",
        "            <ContactPersonPrimary><ContactPerson>WMS operator</ContactPerson>"
        "<ContactOrganization>Example climate data centre</ContactOrganization>"
        "</ContactPersonPrimary>",
        "            <ContactVoiceTelephone>+49 40 0000000</ContactVoiceTelephone>",
        "            <ContactElectronicMailAddress>wms@example.org</ContactElectronicMailAddress>",
        "        </ContactInformation>",
        "        <Fees>none</Fees>",
        "        <AccessConstraints>none</AccessConstraints>",
        "        <LayerLimit>1</LayerLimit>",
        "        <MaxWidth>1024</MaxWidth>",
        "        <MaxHeight>1024</MaxHeight>",
        "    </Service>",
        "    <Capability>",
        "        <Request>",
        "            <GetCapabilities>",
        "                <Format>text/xml</Format>",
        f"                {dcp}",
        "            </GetCapabilities>",
        "            <GetMap>",
    ]
    for fmt in ["image/png", "image/png;mode=32bit", "image/gif", "image/jpeg",
                "application/vnd.google-earth.kmz"]:
        out.append(f"                <Format>{fmt}</Format>")
    out += [
        f"                {dcp}",
        "            </GetMap>",
        "            <GetFeatureInfo>",
        "                <Format>image/png</Format>",
        "                <Format>text/xml</Format>",
        f"                {dcp}",
        "            </GetFeatureInfo>",
        "        </Request>",
        "        <Exception>",
        "            <Format>XML</Format>",
        "        </Exception>",
        "        <Layer>",
        "            <Title>Climate data WMS</Title>",
    ]
    out += [f"            <CRS>{crs}</CRS>" for crs in CRS]
    for ds_id, title, freq, levels, variables in datasets:
        out.append(DATASET_OPEN)
        out.append(f"                <Title>{escape(title)}</Title>")
        for var, long_name, units in variables:
            layer(out, ds_id, freq, levels, var, long_name, units)
        out.append(DATASET_CLOSE)
    out += ["        </Layer>", "    </Capability>", "</WMS_Capabilities>", ""]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=1,
                        help="repeat the data sets this many times (default 1)")
    args = parser.parse_args()
    sys.stdout.write(document(DATASETS * args.copies))


if __name__ == "__main__":
    main()
